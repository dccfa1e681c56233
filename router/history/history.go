// Package history keeps the last N lines of each app for log sessions, as Logplex
// kept 1500. Lines are stored in their compact message encoding in a ring, so a
// buffered line costs its bytes plus an 8-byte index slot, not a heap object.
package history

import (
	"slices"
	"sync"

	"github.com/kubeplex/kubeplex/router/ring"
)

// History is one app's ring of recent lines; safe for concurrent use.
type History struct {
	mu sync.RWMutex
	r  *ring.Ring
	// subs are offered every appended record under mu, so a subscriber sees each
	// record exactly once: in its snapshot or in its tail.
	subs []Subscriber
}

// Subscriber receives records as they are appended, a batch at a time. Offer runs
// under the history's lock: it must copy what it keeps and never block (tail sessions
// drop instead).
type Subscriber interface {
	Offer(recs [][]byte)
}

// New returns a history of at most size lines.
func New(size int) *History {
	return &History{r: ring.New(size)}
}

// Append stores records (message encodings), evicting the oldest beyond the limit.
func (h *History) Append(recs ...[]byte) {
	h.mu.Lock()
	for _, rec := range recs {
		h.r.Push(rec)
	}
	for _, s := range h.subs {
		s.Offer(recs)
	}
	h.mu.Unlock()
}

// Subscribe calls fn with every record held, oldest first (fn must copy what it
// keeps), then, when sub is not nil, offers sub every record appended from then on,
// until cancel is called. Nothing is appended in between, so the snapshot and the
// tail neither overlap nor leave a gap.
func (h *History) Subscribe(fn func(rec []byte) bool, sub Subscriber) (cancel func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.r.Range(0, fn)
	if sub == nil {
		return func() {}
	}
	h.subs = append(h.subs, sub)
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, s := range h.subs {
			if s == sub {
				h.subs = slices.Delete(h.subs, i, i+1)
				return
			}
		}
	}
}

// Resize changes the line limit, keeping the newest lines.
func (h *History) Resize(size int) {
	h.mu.Lock()
	h.r.Resize(size)
	h.mu.Unlock()
}

// Len returns the number of lines held.
func (h *History) Len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.r.Len()
}

// Footprint estimates the bytes the history holds.
func (h *History) Footprint() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.r.Footprint()
}

// Last calls fn with up to n of the newest records, oldest first, until fn returns
// false. The slices are valid only during the call, which holds a read lock: fn must
// copy what it keeps and must not block.
func (h *History) Last(n int, fn func(rec []byte) bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	k := h.r.Len() - n
	if k < 0 || n < 0 {
		k = 0
	}
	h.r.Range(k, fn)
}

// Release returns the memory to the pool; the history must not be used after.
func (h *History) Release() {
	h.mu.Lock()
	h.r.Reset()
	h.mu.Unlock()
}
