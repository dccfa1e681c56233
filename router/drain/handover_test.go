package drain

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// stuckDrain takes a batch and holds it until its ctx ends, as a forwarder whose
// owners all refuse does (unsent: ErrUnsent) or a drain stuck in a write (sent).
type stuckDrain struct {
	unsent bool
	took   chan []string
	t      *testing.T
}

func (d *stuckDrain) Close() error   { return nil }
func (d *stuckDrain) Limits() Limits { return Limits{Messages: 100, Bytes: 64 << 10} }
func (d *stuckDrain) Deliver(ctx context.Context, b *Batch) (int, error) {
	d.took <- texts(d.t, b)
	<-ctx.Done()
	if d.unsent {
		return 0, errors.Join(ErrUnsent, ctx.Err())
	}
	return 0, ctx.Err()
}

// offerAB offers lines a and b to r and waits until its drain has taken them as one
// batch (took: what the drain's Deliver was given).
func offerAB(t *testing.T, r *Runner, took <-chan []string) {
	t.Helper()
	r.Offer([][]byte{rec("a"), rec("b")})
	select {
	case got := <-took:
		if strings.Join(got, " ") != "a b" {
			t.Fatalf("old runner took %q", got)
		}
	case <-time.After(time.Minute):
		t.Fatal("old runner never took the batch")
	}
}

// TestHandover: a runner stopped for a successor (Handover) hands over the batch it
// had taken and not begun to send, and the successor delivers it first, then the
// queue, with nothing counted dropped; a batch whose sending had begun is counted
// as dropped and never handed on, so no line is delivered twice.
func TestHandover(t *testing.T) {
	for _, tc := range []struct {
		name               string
		unsent, concurrent bool
	}{{"unsent", true, false}, {"unsent, to a concurrent drain", true, true}, {"sending began", false, false}} {
		unsent := tc.unsent
		t.Run(tc.name, func(t *testing.T) {
			st := &Stats{}
			q := NewQueue(1000, st)
			old := &stuckDrain{unsent: unsent, took: make(chan []string, 1), t: t}
			r := NewRunner(&Config{App: "ns/app"}, q, st, old, RunnerOptions{})
			offerAB(t, r, old.took)
			r.Offer([][]byte{rec("c")}) // queued behind the batch in flight
			carry := r.Handover()
			if unsent != (carry != nil) {
				t.Fatalf("carry %v for unsent=%v", carry, unsent)
			}
			sink := &lossyDrain{t: t, done: make(chan struct{}, 10)}
			var next Drain = sink
			if tc.concurrent {
				next = concurrentDrain{sink}
			}
			nr := NewRunner(&Config{App: "ns/app"}, q, st, next, RunnerOptions{Carry: carry})
			defer nr.Stop(context.Background(), false)
			want := "a b c"
			if !unsent {
				want = "c" // and the two counted dropped, announced first
			}
			delivered := func() string {
				var all []string
				for _, b := range sink.got() {
					for _, s := range b {
						if !strings.HasPrefix(s, "Error L10") {
							all = append(all, s)
						}
					}
				}
				return strings.Join(all, " ")
			}
			deadline := time.Now().Add(time.Minute)
			for delivered() != want && time.Now().Before(deadline) {
				select {
				case <-sink.done:
				case <-time.After(100 * time.Millisecond):
				}
			}
			if got := delivered(); got != want {
				t.Fatalf("successor delivered %q, want %q", got, want)
			}
			wantDropped := int64(0)
			if !unsent {
				wantDropped = 2
			}
			if st.Dropped.Load() != wantDropped || st.Delivered.Load() != int64(len(strings.Fields(want))) {
				t.Errorf("dropped %d, delivered %d; want %d, %d", st.Dropped.Load(), st.Delivered.Load(), wantDropped, len(strings.Fields(want)))
			}
		})
	}
}

// concurrentDrain is a drain the runner may give several batches at once.
type concurrentDrain struct{ *lossyDrain }

func (concurrentDrain) InFlight() int { return 2 }

// heldDrain is a Concurrent drain whose requests wait for release (delivered) or
// for their ctx (cut), as an HTTP drain's requests in flight do.
type heldDrain struct {
	took    chan []string
	release chan struct{}
	closes  atomic.Int32
	t       *testing.T
}

func (d *heldDrain) Close() error   { d.closes.Add(1); return nil }
func (d *heldDrain) Limits() Limits { return Limits{Messages: 100, Bytes: 64 << 10} }
func (d *heldDrain) InFlight() int  { return 4 }
func (d *heldDrain) Deliver(ctx context.Context, b *Batch) (int, error) {
	d.took <- texts(d.t, b)
	select {
	case <-d.release:
		return b.Len(), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// TestHandoverConcurrent: a runner of a Concurrent drain handed over does not cut
// its requests in flight. Handover returns while they still run, with no carry; the
// successor delivers what was queued behind them meanwhile; once they complete they
// are counted delivered, and the old drain is closed once. A request still running
// when the grace given to Stop is over is cut and counted dropped.
func TestHandoverConcurrent(t *testing.T) {
	for _, graceOver := range []bool{false, true} {
		t.Run(map[bool]string{false: "requests complete", true: "grace over"}[graceOver], func(t *testing.T) {
			st := &Stats{}
			q := NewQueue(1000, st)
			old := &heldDrain{took: make(chan []string, 4), release: make(chan struct{}), t: t}
			r := NewRunner(&Config{App: "ns/app"}, q, st, old, RunnerOptions{})
			if !r.Concurrent() {
				t.Fatal("a drain with InFlight 4 runs one batch at a time")
			}
			offerAB(t, r, old.took)
			r.Offer([][]byte{rec("c")}) // queued: one line is no backlog for a second request
			handedOver := make(chan *Carry)
			go func() { handedOver <- r.Handover() }()
			select {
			case carry := <-handedOver:
				if carry != nil {
					t.Fatalf("carry %v from a concurrent runner", carry)
				}
			case <-time.After(time.Minute):
				t.Fatal("Handover waits for the request in flight")
			}
			sink := &lossyDrain{t: t, done: make(chan struct{}, 10)}
			nr := NewRunner(&Config{App: "ns/app"}, q, st, sink, RunnerOptions{})
			defer nr.Stop(context.Background(), false)
			select {
			case <-sink.done:
			case <-time.After(time.Minute):
				t.Fatal("the successor delivered nothing while the old request ran")
			}
			if got := sink.got(); len(got) != 1 || strings.Join(got[0], " ") != "c" {
				t.Fatalf("successor delivered %q, want [[c]]", got)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if graceOver {
				cancel()
			} else {
				close(old.release)
			}
			r.Stop(ctx, true)
			cancel()
			r.Stop(context.Background(), true) // again: the drain is closed once
			wantDelivered, wantDropped := int64(3), int64(0)
			if graceOver {
				wantDelivered, wantDropped = 1, 2
			}
			if st.Delivered.Load() != wantDelivered || st.Dropped.Load() != wantDropped {
				t.Errorf("delivered %d, dropped %d; want %d, %d", st.Delivered.Load(), st.Dropped.Load(), wantDelivered, wantDropped)
			}
			if n := old.closes.Load(); n != 1 {
				t.Errorf("old drain closed %d times", n)
			}
			select {
			case got := <-old.took:
				t.Errorf("old runner took %q after Handover", got)
			default:
			}
		})
	}
}
