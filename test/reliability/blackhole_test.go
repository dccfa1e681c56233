package reliability

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// pace posts lines for app at rate a second in batches of 100 until ctx ends or n
// were sent (g.Sent() says how many the router took).
func pace(ctx context.Context, t *testing.T, g *Generator, rate, n int) {
	start := time.Now()
	for g.Sent() < n && ctx.Err() == nil {
		if _, err := g.Send(100, 100); err != nil {
			t.Errorf("send: %v", err)
			return
		}
		if ahead := time.Duration(g.Sent())*time.Second/time.Duration(rate) - time.Since(start); ahead > 0 {
			select {
			case <-time.After(ahead):
			case <-ctx.Done():
			}
		}
	}
}

// TestScenario2BlackholedDrain: the receiver of a syslog drain stops reading (its
// connections stay open, new ones are accepted and never read) while lines keep
// coming. The router notices the stall (a write makes no progress for 5 s and
// /status says so; how long after the receiver stopped is reported), and its RSS
// stays within the drain's queue plus 50 MiB however long it lasts. Once the
// receiver reads again, the newest lines the queue kept arrive and every drop is
// announced. What the receiver's kernel acknowledged on its dead connections is
// lost with them, beyond what TCP lets the router see: the short version holds the
// blackhole until the stall is seen, so that is only what the first connection
// held, and the sink's L10 counts equal the router's drops; make test-reliability
// holds it 120 s at 5,000 lines/s with a 200,000-line queue, and the router
// reconnects into the blackhole several times: L10 notices of those batches are
// among what the dead connections swallowed, so there the router's announced count
// must equal its drops and the sink's L10 counts may be lower, never higher.
func TestScenario2BlackholedDrain(t *testing.T) {
	queue, rate, hold := 20000, 6000, time.Duration(0)
	if long {
		queue, rate, hold = 200000, 5000, 120*time.Second
	}
	books := NewBooks()
	books.Open(drainToken, "app")
	proxy := proxiedSyslog(t, books)
	tbl := routing.Table{Apps: []routing.App{{ID: "rel/app",
		Tokens: []routing.Token{{Token: ingestToken, Source: "app"}},
		Drains: []routing.Drain{{ID: "rel/drain", Token: drainToken, URL: "syslog://" + proxy.Addr}}}}}
	r, proc := startRouterTable(t, tbl, "--queue-size", fmt.Sprint(queue))
	pid := proc.Cmd.Process.Pid
	base, err := ReadProc(pid)
	if err != nil {
		t.Fatal(err)
	}

	// The drain works, then its receiver stops reading.
	g := &Generator{URL: r.base + "/logs", Token: ingestToken, App: "app"}
	pace(context.Background(), t, g, rate, rate/2)
	testenv.Until(t, "the first lines delivered", func() bool { return books.Get(drainToken).Delivered > 0 })
	if err := proxy.Set(Blackhole); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var peak ProcStat
	wg.Go(func() { pace(ctx, t, g, rate, 1<<30) })
	wg.Go(func() {
		for ctx.Err() == nil {
			if st, err := ReadProc(pid); err == nil && st.RSS > peak.RSS {
				peak = st
			}
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	})
	var st routing.DrainStatus
	testenv.Until(t, "the stall reported in /status", func() bool {
		st = r.drainStatus(t)
		return st.LastErrorTime != nil && st.LastErrorTime.After(t0)
	})
	detected := st.LastErrorTime.Sub(t0)
	var sinceOK time.Duration
	if st.LastSuccess != nil {
		sinceOK = st.LastErrorTime.Sub(*st.LastSuccess)
	}
	t.Logf("stall reported %v after the receiver stopped reading, %v after the last write it took: %q",
		detected.Round(time.Millisecond), sinceOK.Round(time.Millisecond), st.LastError)
	if !strings.Contains(st.LastError, "timeout") {
		t.Errorf("lastError %q does not say the write timed out", st.LastError)
	}
	if d := hold - time.Since(t0); d > 0 {
		time.Sleep(d) // the scenario's input: how long the receiver stays dead
	}
	stop()
	wg.Wait()
	sent := g.Sent()
	held := r.drainStatus(t)
	// What the queue holds at most: queue records of this size, each with the
	// queue's 8-byte stamp.
	rec := len(fmt.Sprintf("<190>1 2026-12-01T10:00:00.000000+00:00 %s app web.1 - - %s", drainToken, Line("app", sent)))
	limit := base.RSS + int64(queue)*int64(rec+8) + 50<<20
	t.Logf("sent %d at %d/s over %v of blackhole; queued %d, dropped %d; RSS %.1f MiB at start, peak %.1f MiB, bound %.1f MiB (start + queue of %d × %d B + 50 MiB)",
		sent, rate, time.Since(t0).Round(time.Second), held.Queued, held.Dropped, float64(base.RSS)/(1<<20), float64(peak.RSS)/(1<<20), float64(limit)/(1<<20), queue, rec+8)
	if peak.RSS > limit {
		t.Errorf("router RSS peaked at %.1f MiB, over the bound %.1f MiB", float64(peak.RSS)/(1<<20), float64(limit)/(1<<20))
	}

	// The receiver reads again: what the queue held arrives; what the kernel had
	// taken on the stalled connections is TCP's to lose (docs/drains.md).
	if err := proxy.Set(Pass); err != nil {
		t.Fatal(err)
	}
	var bk Book
	var announced float64
	if err := Until(5*time.Minute, func() bool {
		bk = books.Get(drainToken)
		st = r.drainStatus(t)
		announced, _ = Metric(r.admin+"/metrics", `kubeplex_router_drain_drops_announced_total{app="rel/app",drain="rel/drain"}`)
		return st.Queued == 0 && int64(announced) == st.Dropped && bk.Delivered >= min(queue, sent) &&
			(long || bk.Announced == st.Dropped)
	}); err != nil {
		t.Fatalf("after recovery: delivered %d, announced %d (router: %v), /status %+v", bk.Delivered, bk.Announced, announced, st)
	}
	// Lines still on their way through the kernels and the proxy: wait until the
	// sink's books balance, or stop changing in the long version (lines its dead
	// connections swallowed never come).
	last, same := -1, 0
	_ = Until(2*time.Minute, func() bool {
		bk = books.Get(drainToken)
		b := bk.Balance(sent)
		if b == last {
			same++
		} else {
			last, same = b, 0
		}
		return b <= 0 || long && same >= 250 // 5 s without a change
	})
	t.Logf("after recovery: delivered %d, announced at the sink %d (router: dropped %d, announced %v, delivered %d), unaccounted %d "+
		"(lines and L10 notices the kernel took on stalled connections), repeats %d; of the newest %d, %d missing",
		bk.Delivered, bk.Announced, st.Dropped, announced, st.Delivered, bk.Balance(sent), bk.Repeats, queue,
		books.Missing(drainToken, sent-min(queue, sent), sent))
	if !long && bk.Balance(sent) != 0 {
		t.Errorf("%d lines unaccounted: the stalled connection resumed, nothing should be lost", bk.Balance(sent))
	}
	if bk.Balance(sent) < 0 || bk.Announced > st.Dropped {
		t.Errorf("more announced than lost: sink %d over, router dropped %d, sink announced %d", -bk.Balance(sent), st.Dropped, bk.Announced)
	}
}
