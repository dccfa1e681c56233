package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/collector/ship"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// collectorRun is what the collector-spreading run measured.
type collectorRun struct {
	collectors, replicas int
	maxAge               time.Duration
	steady               []float64 // mean open connections per replica before the restart
	down                 time.Duration
	peak                 float64       // largest connections on one replica / fair share, restart to respread
	over2x               time.Duration // time any replica held over twice its share
	respread             time.Duration // restarted replica ready → back to 80% of its share
	after                []float64
	pushed, delivered    int64
	recycled             int64
}

// measureCollectors runs collectors shippers (the collector's real ship package, one
// goroutine each, one line every 100 ms) against replicas routers behind the front,
// then restarts replica 0 and follows the spread of connections.
func measureCollectors(bin string, collectors, replicas int, maxAge time.Duration) (collectorRun, error) {
	res := collectorRun{collectors: collectors, replicas: replicas, maxAge: maxAge}
	const apps = 20
	sink, err := newCountSink()
	if err != nil {
		return res, err
	}
	defer sink.close()
	t := &routing.Table{}
	for i := range apps {
		t.Apps = append(t.Apps, routing.App{ID: fmt.Sprintf("bench/app-%d", i), History: 1500,
			Tokens: []routing.Token{{Token: benchToken(i), Source: srcApp}},
			Drains: []routing.Drain{{ID: fmt.Sprintf("bench/drain-%d", i), Token: fmt.Sprintf("d.%08x-0000-4000-8000-000000000000", i),
				URL: "syslog://" + sink.addr()}}})
	}
	rs, err := startRouters(bin, replicas, t)
	if err != nil {
		return res, err
	}
	defer rs.Stop()
	f, err := newFront(rs.http)
	if err != nil {
		return res, err
	}
	defer f.close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pushed atomic.Int64
	stop := make(chan struct{})
	var wg, pushers sync.WaitGroup
	shippers := make([]*ship.Shipper, collectors)
	for k := range collectors {
		q := queue.New(100000, 64<<20)
		shippers[k] = ship.New(q, ship.Options{URL: "http://" + f.addr() + "/logs", Token: benchToken(k % apps),
			MaxConnAge: maxAge, Client: ship.NewClient(), Attempts: 10})
		wg.Go(func() { _ = shippers[k].Run(ctx) })
		pushers.Go(func() {
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for seq := 0; seq < 100000; seq++ { // bounded: the run stops them long before
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				rec := fmt.Appendf(nil, "<14>1 %s host app web.1 - - c%d-%d", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), k, seq)
				q.Push(queue.Entry{Record: rec, Since: time.Now()})
				pushed.Add(1)
			}
		})
	}
	share := float64(collectors) / float64(replicas)
	sample := func() []float64 {
		out := make([]float64, replicas)
		for i := range out {
			out[i] = float64(f.active[i].Load())
		}
		return out
	}
	mean := func(d time.Duration) []float64 {
		sum := make([]float64, replicas)
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
			for i, v := range sample() {
				sum[i] += v
			}
			time.Sleep(100 * time.Millisecond)
		}
		for i := range sum {
			sum[i] /= float64(n)
		}
		return sum
	}
	total := func(s []float64) float64 {
		t := 0.0
		for _, v := range s {
			t += v
		}
		return t
	}
	if err := waitFor(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
		return total(sample()) >= float64(collectors), nil
	}); err != nil {
		return res, fmt.Errorf("collectors connected: %w", err)
	}
	window := maxAge
	if maxAge < 0 {
		window = 10 * time.Second // no max-age: any window shows the same
	}
	res.steady = mean(window) // one connection age: every collector has reconnected once

	// Restart replica 0 and follow the spread, sampling every 100 ms.
	var mu sync.Mutex
	var peak float64
	var over time.Duration
	sampling := make(chan struct{})
	var sw sync.WaitGroup
	sw.Go(func() {
		for {
			select {
			case <-sampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
			s := sample()
			mu.Lock()
			for _, v := range s {
				peak = max(peak, v/share)
			}
			for _, v := range s {
				if v > 2*share {
					over += 100 * time.Millisecond
					break
				}
			}
			mu.Unlock()
		}
	})
	// As a Service does: the endpoint leaves when the pod stops being ready and comes
	// back when the new one is; the pod is away for 3 s (a reschedule).
	start := time.Now()
	f.out[0].Store(true)
	if err := rs.Restart(context.Background(), 0, 3*time.Second); err != nil {
		close(sampling)
		return res, err
	}
	f.out[0].Store(false)
	res.down = time.Since(start)
	ready := time.Now()
	err = waitFor(ctx, 5*window, 100*time.Millisecond, func() (bool, error) {
		return sample()[0] >= 0.8*share, nil
	})
	res.respread = time.Since(ready)
	close(sampling)
	sw.Wait()
	if err != nil {
		if maxAge > 0 {
			return res, fmt.Errorf("restarted replica back to its share: %w", err)
		}
		res.respread = -1 // never, as expected without a max-age
	}
	res.peak, res.over2x = peak, over
	res.after = mean(window)

	close(stop)
	pushers.Wait()
	res.pushed = pushed.Load()
	waitFrames([]*countSink{sink}, res.pushed, 10*time.Second)
	res.delivered = sink.frames.Load()
	for _, s := range shippers {
		res.recycled += s.Recycled.Load()
	}
	cancel()
	wg.Wait()
	return res, nil
}

func collectorsSection(r, without collectorRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench-scale` (`-only collectors`) on %s, %s; measured under load (%s).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAvg(), loadNote)
	fmt.Fprintf(&b, "%d collectors (the collector's `collector/ship` code, one goroutine each, one line every 100 ms, HTTP keep-alive) "+
		"post to %d router replicas through the round-robin front; connection max-age %v (±25%%; the default is %v, shortened so "+
		"the run takes a minute). Replica 0 is restarted: taken out of the front (as an endpoint that is no longer ready), "+
		"SIGTERM (it finishes its requests and flushes its drains), 3 s away, started again on the same ports and put back "+
		"once ready. Connections per replica are sampled every 100 ms at the front; the fair share is %.1f.\n\n",
		r.collectors, r.replicas, r.maxAge, ship.DefaultMaxConnAge, float64(r.collectors)/float64(r.replicas))
	f := func(xs []float64) string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[i] = fmt.Sprintf("%.1f", x)
		}
		return strings.Join(out, " / ")
	}
	mdHead(&b, "measure", "max-age "+r.maxAge.String(), "no max-age (before)")
	respread := func(c collectorRun) string {
		if c.respread < 0 {
			return "not within 50s"
		}
		return c.respread.Round(100 * time.Millisecond).String()
	}
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	mdRow(&b, "connections per replica, steady (mean over one max-age, or 10 s)", f(r.steady), f(without.steady))
	mdRow(&b, "replica 0 out of the front (taken out → back in)", ms(r.down), ms(without.down))
	mdRow(&b, "most connections on one replica, as a multiple of the share, restart → respread",
		fmt.Sprintf("%.2f×", r.peak), fmt.Sprintf("%.2f×", without.peak))
	mdRow(&b, "time any replica held more than 2× its share", r.over2x, without.over2x)
	mdRow(&b, "restarted replica ready → back to 80% of its share", respread(r), respread(without))
	mdRow(&b, "connections per replica after (mean over one max-age, or 10 s)", f(r.after), f(without.after))
	mdRow(&b, "connections given up for their age", r.recycled, without.recycled)
	mdRow(&b, "lines pushed / frames delivered to the drains", fmt.Sprintf("%d / %d", r.pushed, r.delivered),
		fmt.Sprintf("%d / %d", without.pushed, without.delivered))
	return b.String()
}
