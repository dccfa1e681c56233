package ship_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/collector/ship"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// receiver is a logplex-1 endpoint that records which collector lines it got and
// how many connections it accepted.
type receiver struct {
	srv   *http.Server
	addr  string
	conns atomic.Int64
	mu    sync.Mutex
	lines map[string]int // "c<k>-<seq>" → times received
	from  map[int]bool   // collectors seen
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: ln.Addr().String(), lines: map[string]int{}, from: map[int]bool{}}
	r.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(r.serve),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				r.conns.Add(1)
			}
		}}
	go func() { _ = r.srv.Serve(ln) }()
	t.Cleanup(func() { _ = r.srv.Close() })
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err = wire.SplitFrames(body, 1<<16, func(rec []byte) error {
		i := bytes.LastIndex(rec, []byte("- - "))
		text := string(rec[i+4:])
		var k, seq int
		if _, err := fmt.Sscanf(text, "c%d-%d", &k, &seq); err == nil {
			r.lines[text]++
			r.from[k] = true
		}
		return nil
	})
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) collectors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.from)
}

// rrFront gives each new connection to the next backend in its current list, as a
// Service spreads new connections over its endpoints.
type rrFront struct {
	ln   net.Listener
	mu   sync.Mutex
	back []string
	next int
}

func newFront(t *testing.T, backends ...string) *rrFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &rrFront{ln: ln, back: backends}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			to := f.back[f.next%len(f.back)]
			f.next++
			f.mu.Unlock()
			go func() {
				b, err := net.Dial("tcp", to)
				if err != nil {
					_ = c.Close()
					return
				}
				go func() { _, _ = io.Copy(c, b); _ = c.Close() }()
				_, _ = io.Copy(b, c)
				_ = b.Close()
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return f
}

func (f *rrFront) set(backends ...string) {
	f.mu.Lock()
	f.back = backends
	f.mu.Unlock()
}

// TestRebalanceAfterReplicaJoinsAndLeaves: 30 collectors ship through a front to two
// receivers. A third joins: collectors reach it as their connections reach their
// age, without anything failing. One of the first two leaves (it shuts down,
// finishing what it is answering): its collectors move on. Every line is received.
func TestRebalanceAfterReplicaJoinsAndLeaves(t *testing.T) {
	const collectors = 30
	a, b, c := newReceiver(t), newReceiver(t), newReceiver(t)
	front := newFront(t, a.addr, b.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var pushed [collectors]atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	shippers := make([]*ship.Shipper, collectors)
	for k := range collectors {
		q := queue.New(100000, 64<<20)
		shippers[k] = ship.New(q, ship.Options{URL: "http://" + front.ln.Addr().String() + "/logs", Token: "t.test",
			Linger: 5 * time.Millisecond, BatchSize: 20, MaxConnAge: 100 * time.Millisecond, Attempts: 20,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond, Client: ship.NewClient()})
		wg.Go(func() { _ = shippers[k].Run(ctx) })
		// One line every couple of milliseconds, at most 50,000 each: the run is
		// bounded in count; it ends when the test has seen what it waits for.
		wg.Go(func() {
			for seq := 0; seq < 50000; seq++ {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				rec := fmt.Appendf(nil, "<14>1 2026-12-01T10:00:00.000000+00:00 host app web.1 - - c%d-%d", k, seq)
				q.Push(queue.Entry{Record: rec, Since: time.Now()})
				pushed[k].Add(1)
			}
		})
	}

	testenv.Until(t, "both first receivers serve collectors", func() bool { return a.collectors() > 0 && b.collectors() > 0 })
	front.set(a.addr, b.addr, c.addr)
	// Nothing fails on the way: collectors leave their old connections at their age.
	testenv.Until(t, "the joined receiver serves a share of the collectors", func() bool { return c.collectors() >= collectors/3 })

	front.set(b.addr, c.addr)
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := a.srv.Shutdown(sctx); err != nil {
		t.Errorf("shut down the leaving receiver: %v", err)
	}
	scancel()
	atA := a.conns.Load()
	// Collectors keep shipping to the two that remain.
	mark := make([]int64, collectors)
	for k := range collectors {
		mark[k] = pushed[k].Load()
	}
	testenv.Until(t, "every collector ships after the leave", func() bool {
		for k := range collectors {
			if pushed[k].Load() < mark[k]+10 {
				return false
			}
		}
		return true
	})
	close(stop)
	// Every line pushed arrives somewhere.
	want := func() (missing int, first string) {
		for k := range collectors {
			for seq := range pushed[k].Load() {
				key := fmt.Sprintf("c%d-%d", k, seq)
				n := 0
				for _, r := range []*receiver{a, b, c} {
					r.mu.Lock()
					n += r.lines[key]
					r.mu.Unlock()
				}
				if n == 0 {
					if missing == 0 {
						first = key
					}
					missing++
				}
			}
		}
		return missing, first
	}
	testenv.Eventually(t, "every line received", func() error {
		if m, first := want(); m > 0 {
			return fmt.Errorf("%d lines not received yet, first %s", m, first)
		}
		return nil
	})
	if a.conns.Load() != atA {
		t.Errorf("the receiver that left got %d new connections after it left", a.conns.Load()-atA)
	}
	recycled := int64(0)
	for _, s := range shippers {
		recycled += s.Recycled.Load()
	}
	if recycled == 0 {
		t.Error("no connection was recycled for its age")
	}
	cancel()
	wg.Wait()
}
