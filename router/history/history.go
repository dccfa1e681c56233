// Package history keeps the last N lines of each app for log sessions, as Logplex
// kept 1500. Lines are stored in their compact message encoding in a ring, so a
// buffered line costs its bytes plus an 8-byte index slot, not a heap object.
//
// Each history numbers the lines it stores (1, 2, …, in the order they were
// appended) and has a random ID, so a log session can say exactly which of a
// replica's lines it has sent whatever their timestamps: a cursor of (ID, sequence)
// resumes after the last line sent even when a later one carries an older time.
// The numbers are not stored: the ring is a FIFO, so the k-th oldest record has
// number last-len+1+k.
package history

import (
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/kubeplex/kubeplex/router/ring"
)

// History is one app's ring of recent lines; safe for concurrent use.
type History struct {
	mu sync.RWMutex
	r  *ring.Ring
	id uint32
	// last is the sequence number of the newest record stored (0: none yet).
	last uint64
	// subs are offered every appended record under mu, so a subscriber sees each
	// record exactly once: in its snapshot or in its tail.
	subs []Subscriber
}

// Subscriber receives records as they are appended, a batch at a time, with the
// sequence number of the first (the others follow it one by one). Offer runs under
// the history's lock: it must copy what it keeps and never block (tail sessions drop
// instead).
type Subscriber interface {
	Offer(first uint64, recs [][]byte)
}

// New returns a history of at most size lines, with a fresh random ID.
func New(size int) *History {
	return &History{r: ring.New(size), id: newID()}
}

// newID returns a random non-zero ID: a history made again (a router restarted, an
// app removed and added) numbers its lines from 1 again under another ID, so no
// cursor of the old one applies to it.
func newID() uint32 {
	var b [4]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
		if id := binary.LittleEndian.Uint32(b[:]); id != 0 {
			return id
		}
	}
}

// ID identifies this history among every replica's histories of the app.
func (h *History) ID() uint32 { return h.id }

// Append stores records (message encodings), evicting the oldest beyond the limit.
func (h *History) Append(recs ...[]byte) {
	h.mu.Lock()
	first := h.last + 1
	var refused bool
	for _, rec := range recs {
		if _, ok := h.r.Push(rec); !ok {
			refused = true // too long to store; never for a router's records
			continue
		}
		h.last++
	}
	if refused {
		// Numbers and the ring must stay in step: subscribers get what was stored.
		recs = slices.DeleteFunc(slices.Clone(recs), func(rec []byte) bool { return len(rec) > ring.MaxRecord })
	}
	if len(recs) > 0 {
		for _, s := range h.subs {
			s.Offer(first, recs)
		}
	}
	h.mu.Unlock()
}

// Subscribe calls fn with every record held and its sequence number, oldest first
// (fn must copy what it keeps), then, when sub is not nil, offers sub every record
// appended from then on, until cancel is called. Nothing is appended in between, so
// the snapshot and the tail neither overlap nor leave a gap: last is the sequence
// number of the newest record stored at that moment (0: none yet), and the tail
// starts right after it.
func (h *History) Subscribe(fn func(seq uint64, rec []byte) bool, sub Subscriber) (last uint64, cancel func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seq := h.last - uint64(h.r.Len())
	h.r.Range(0, func(rec []byte) bool {
		seq++
		return fn(seq, rec)
	})
	if sub == nil {
		return h.last, func() {}
	}
	h.subs = append(h.subs, sub)
	return h.last, func() {
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

// Join calls fn with every record held and its sequence number, oldest first, as
// Subscribe does, and then join, under the same lock: a subscriber that fans records
// out to many readers (and is subscribed once) adds a reader in join, so the reader
// gets every record either in the snapshot or from the subscriber, never both or
// neither. last is the newest sequence number at that moment.
func (h *History) Join(fn func(seq uint64, rec []byte) bool, join func()) (last uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seq := h.last - uint64(h.r.Len())
	h.r.Range(0, func(rec []byte) bool {
		seq++
		return fn(seq, rec)
	})
	join()
	return h.last
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
