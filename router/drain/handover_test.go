package drain

import (
	"context"
	"errors"
	"strings"
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
			r.Offer([][]byte{rec("a"), rec("b")})
			select {
			case got := <-old.took:
				if strings.Join(got, " ") != "a b" {
					t.Fatalf("old runner took %q", got)
				}
			case <-time.After(time.Minute):
				t.Fatal("old runner never took the batch")
			}
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
