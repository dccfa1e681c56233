// Package history keeps the last N lines of each app for log sessions, as Logplex
// kept 1500. Lines are stored in their compact message encoding in a ring, so a
// buffered line costs its bytes plus an 8-byte index slot, not a heap object.
package history

import (
	"sync"

	"github.com/kubeplex/kubeplex/router/ring"
)

// History is one app's ring of recent lines; safe for concurrent use.
type History struct {
	mu sync.RWMutex
	r  *ring.Ring
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
	h.mu.Unlock()
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
