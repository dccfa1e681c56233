package drain

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// lossyDrain reports, on its second batch, that n frames of its first one never
// arrived (as a syslog drain does after replacing a stalled connection), and keeps
// what it was given.
type lossyDrain struct {
	mu      sync.Mutex
	batches [][]string
	n       int
	t       *testing.T
	done    chan struct{}
}

func (d *lossyDrain) Close() error { return nil }

func (d *lossyDrain) Limits() Limits { return Limits{Messages: 100, Bytes: 64 << 10} }

func (d *lossyDrain) Deliver(_ context.Context, b *Batch) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.batches = append(d.batches, texts(d.t, b))
	if len(d.batches) == 2 {
		b.LostEarlier = d.n
	}
	d.done <- struct{}{}
	return b.Len(), nil
}

func (d *lossyDrain) got() [][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]string(nil), d.batches...)
}

// TestLostEarlierAnnounced: frames a drain reported delivered and later found lost
// are counted dropped and announced in the next batch's L10 notice.
func TestLostEarlierAnnounced(t *testing.T) {
	st := &Stats{}
	q := NewQueue(1000, st)
	d := &lossyDrain{n: 7, t: t, done: make(chan struct{}, 3)}
	r := NewRunner(&Config{App: "ns/app"}, q, st, d, RunnerOptions{})
	t.Cleanup(func() { r.Stop(context.Background(), false) })
	next := func() {
		t.Helper()
		select {
		case <-d.done:
		case <-time.After(time.Minute):
			t.Fatalf("%d batches delivered, want one more", len(d.got()))
		}
	}
	for i := range 2 {
		r.Offer([][]byte{rec("line " + string(rune('a'+i)))})
		next()
	}
	// The notice goes out by itself or ahead of the next line.
	r.Offer([][]byte{rec("line c")})
	next()
	if got := d.got()[2]; !strings.HasPrefix(got[0], "Error L10 (output buffer overflow): 7 messages dropped") {
		t.Fatalf("third batch %q, want the L10 notice of the 7 lost frames first", got)
	}
	if st.Dropped.Load() != 7 {
		t.Fatalf("dropped %d, want 7", st.Dropped.Load())
	}
}
