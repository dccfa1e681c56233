package reliability

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// restartBatch is how many lines postTo sends at once.
const restartBatch = 50

// postTo posts lines [from, from+restartBatch) of "app" with the ingest token to url
// and reports whether the router took them (204).
func postTo(url string, from int) bool {
	n := restartBatch
	var body []byte
	now := time.Now().UTC().Format(wire.TimeLayout)
	for i := range n {
		body = wire.AppendFrame(body, fmt.Appendf(nil, "<190>1 %s h app web.1 - - %s", now, Line("app", from+i)))
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set(wire.HeaderMsgCount, strconv.Itoa(n))
	req.SetBasicAuth("token", ingestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close() // 204 has none
	return resp.StatusCode == http.StatusNoContent
}

// TestScenario5RouterRestart: the router is replaced while lines flow.
//
// Graceful rolling restart: a second replica runs beside the first (as a rollout
// with surge), the first gets SIGTERM while a sender posts to it; the sender moves
// to the second when the first refuses (as a Service drops a terminating endpoint).
// The first stops accepting, finishes what it took, flushes its queues and exits:
// every line reaches both drains (syslog and HTTP), at most one batch twice.
//
// SIGKILL: the first replica holds lines for a refusing drain and is killed. What it
// held is lost — the router keeps queues in memory only, as Logplex, so nothing can
// announce them after the restart — and the receiver sees it as a gap in the
// sequence numbers exactly the size of what /status said was queued (plus the batch
// in hand); the replacement's /status has a new start time, so counters reset
// visibly.
func TestScenario5RouterRestart(t *testing.T) {
	const batch = restartBatch
	tableFor := func(syslogAddr, httpURL string) routing.Table {
		ds := []routing.Drain{{ID: "rel/syslog", Token: drainToken, URL: "syslog://" + syslogAddr}}
		if httpURL != "" {
			ds = append(ds, routing.Drain{ID: "rel/http", Token: "d.7e57a11a-0000-4000-8000-000000000003", URL: httpURL})
		}
		return routing.Table{Apps: []routing.App{{ID: "rel/app", Tokens: []routing.Token{{Token: ingestToken, Source: "app"}}, Drains: ds}}}
	}

	t.Run("graceful rolling restart", func(t *testing.T) {
		books := NewBooks()
		books.Open(drainToken, "app")
		sink := countingSyslog(t, books)
		// A slow HTTP receiver: the first replica still has lines queued for it when
		// it is told to stop, and must flush them.
		web := NewHTTPSink(func(int) Answer { return Answer{Code: 200, Delay: 50 * time.Millisecond} })
		t.Cleanup(web.Close)
		tbl := tableFor(sink.Addr, web.URL+"/logs")
		// Queues that hold the whole run: only the restart may lose anything.
		a, pa := startRouterTable(t, tbl, "--shutdown-grace", "30s", "--queue-size", "100000")
		b, _ := startRouterTable(t, tbl, "--queue-size", "100000")
		total := 4000
		if long {
			total = 40000
		}
		urls := []string{a.base + "/logs", b.base + "/logs"}
		cur, sent, moved, queuedAtTerm := 0, 0, -1, 0
		for sent < total {
			if sent == total/2 && moved < 0 {
				// Mid-stream: the first replica is told to stop.
				for _, d := range a.status(t).Drains {
					queuedAtTerm += d.Queued
				}
				if err := pa.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				moved = 0
			}
			if postTo(urls[cur], sent) {
				sent += batch
				continue
			}
			if cur == 1 {
				t.Fatalf("the second replica refused lines %d…", sent)
			}
			cur, moved = 1, sent // refused whole: the same lines go to the other replica
		}
		select {
		case <-pa.Exited():
		case <-time.After(time.Minute):
			t.Fatal("the first replica did not exit within a minute of SIGTERM")
		}
		var bk Book
		var acc Account
		if err := Until(time.Minute, func() bool {
			bk, acc = books.Get(drainToken), Tally("app", web.Accepted())
			return bk.Delivered == total && acc.Delivered == total
		}); err != nil {
			t.Fatalf("sent %d: syslog delivered %d, announced %d; http delivered %d, announced %d", total, bk.Delivered, bk.Announced, acc.Delivered, acc.Announced)
		}
		t.Logf("sent %d (SIGTERM with %d queued; moved to the second replica at line %d): syslog %d delivered, %d announced, %d twice; http %d delivered, %d announced, %d twice, %d under two frame ids",
			total, queuedAtTerm, moved, bk.Delivered, bk.Announced, bk.Repeats, acc.Delivered, acc.Announced, acc.Duplicates, web.CrossFrameDuplicates())
		if queuedAtTerm == 0 {
			t.Errorf("nothing queued at SIGTERM: the flush went untested")
		}
		if bk.Announced+int64(acc.Announced) != 0 {
			t.Errorf("lines announced dropped in a graceful restart")
		}
		if bk.Repeats > batch || acc.Duplicates > batch {
			t.Errorf("more than one batch twice: syslog %d, http %d", bk.Repeats, acc.Duplicates)
		}
	})

	t.Run("SIGKILL", func(t *testing.T) {
		books := NewBooks()
		books.Open(drainToken, "app")
		proxy := proxiedSyslog(t, books)
		tbl := tableFor(proxy.Addr, "")
		a, pa := startRouterTable(t, tbl, "--queue-size", "100000")
		// Delivered, then the drain refuses and the router holds what comes.
		sent := 0
		for sent < 1000 {
			if !postTo(a.base+"/logs", sent) {
				t.Fatal("POST refused")
			}
			sent += batch
		}
		testenv.Until(t, "the first lines delivered", func() bool { return books.Get(drainToken).Delivered == sent })
		if err := proxy.Set(Refuse); err != nil {
			t.Fatal(err)
		}
		held := sent
		for sent < held+3000 {
			if !postTo(a.base+"/logs", sent) {
				t.Fatal("POST refused")
			}
			sent += batch
		}
		before := a.status(t)
		queued := before.Drains["rel/syslog"].Queued
		if err := pa.Cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-pa.Exited()
		// The replacement; the drain accepts again.
		b, _ := startRouterTable(t, tbl, "--queue-size", "100000")
		if err := proxy.Set(Pass); err != nil {
			t.Fatal(err)
		}
		after := sent
		for sent < after+1000 {
			if !postTo(b.base+"/logs", sent) {
				t.Fatal("POST refused")
			}
			sent += batch
		}
		testenv.Until(t, "the replacement's lines delivered", func() bool { return books.Missing(drainToken, after, sent) == 0 })
		lost := books.Missing(drainToken, 0, sent)
		gap := books.Missing(drainToken, held, after)
		st := b.status(t)
		t.Logf("sent %d: %d lost, all in the gap %d…%d (%d of those %d lines); the killed router had %d queued; /status started %s → %s; %d announced",
			sent, lost, held, after-1, gap, after-held, queued, before.Started.Format(time.RFC3339Nano), st.Started.Format(time.RFC3339Nano), books.Get(drainToken).Announced)
		if lost != gap {
			t.Errorf("%d lines lost outside what the killed router held", lost-gap)
		}
		if gap < queued || gap > queued+4096 {
			t.Errorf("lost %d, the killed router had %d queued (+ at most one 4096-line batch in hand)", gap, queued)
		}
		if !st.Started.After(before.Started) {
			t.Errorf("the replacement's /status started %s, not after %s", st.Started, before.Started)
		}
	})
}
