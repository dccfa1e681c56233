// Package queue is the collector's bounded in-memory buffer of encoded RFC 5424
// records. Producers that must never block (the worker's output) push with
// drop-oldest; the loss is counted so it can be announced in-band as Logplex's L12,
// and batches that could not be delivered are counted as L13.
package queue

import (
	"context"
	"sync"
	"time"
)

// Entry is one encoded RFC 5424 record waiting to be shipped.
type Entry struct {
	Record []byte
	// Carried is set on a loss notice that arrived from upstream (a wrapper's L12 or
	// L13 line): dropping or losing it loses the N messages it announces, so the queue
	// counts N rather than 1 and the total stays exact.
	Carried int
	Since   time.Time
	// Commit, when set, runs once the entry is delivered or counted as lost (CRI tail
	// uses it to advance its read offset). It runs under the queue lock: keep it cheap.
	Commit func()
}

func (e *Entry) weight() int {
	if e.Carried > 0 {
		return e.Carried
	}
	return 1
}

// Loss is what the queue has dropped and lost since it was last reported.
type Loss struct {
	Dropped      int
	DroppedSince time.Time
	Lost         int
	LostSince    time.Time
}

// Zero reports whether there is nothing to announce.
func (l Loss) Zero() bool { return l.Dropped == 0 && l.Lost == 0 }

// Queue is a bounded FIFO of entries, limited both in count and in bytes.
type Queue struct {
	mu       sync.Mutex
	ring     []Entry
	head, n  int
	bytes    int
	maxBytes int
	wake     int // signal ready when n reaches this many entries
	loss     Loss
	pushed   uint64

	ready chan struct{} // cap 1: work may be available
	room  chan struct{} // cap 1: space may be available
}

// New returns a queue holding at most maxEntries records and maxBytes record bytes.
func New(maxEntries, maxBytes int) *Queue {
	if maxEntries < 1 {
		maxEntries = 1
	}
	return &Queue{
		ring:     make([]Entry, maxEntries),
		maxBytes: maxBytes,
		wake:     1,
		ready:    make(chan struct{}, 1),
		room:     make(chan struct{}, 1),
	}
}

// SetWake makes the ready signal fire when the queue becomes non-empty and again
// when it holds n entries, rather than on every push: a consumer that lingers to fill
// a batch wakes twice per batch instead of once per line.
func (q *Queue) SetWake(n int) {
	q.mu.Lock()
	q.wake = n
	q.mu.Unlock()
}

// Ready is signalled when entries may be waiting.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Push appends e, dropping the oldest entries when the queue is full. It never blocks.
func (q *Queue) Push(e Entry) {
	q.mu.Lock()
	for q.n > 0 && (q.n == len(q.ring) || (q.maxBytes > 0 && q.bytes+len(e.Record) > q.maxBytes)) {
		old := &q.ring[q.head]
		q.countDrop(old.weight(), old.Since)
		if old.Commit != nil {
			old.Commit()
		}
		q.popLocked()
	}
	q.appendLocked(e)
	q.mu.Unlock()
}

// PushWait appends e, waiting for room instead of dropping. It is for producers
// backed by durable storage (CRI log files) or by a sender that buffers on its own
// side (the wrapper's socket): their backlog waits where it is.
func (q *Queue) PushWait(ctx context.Context, e Entry) error {
	for {
		q.mu.Lock()
		if q.n == 0 || (q.n < len(q.ring) && (q.maxBytes <= 0 || q.bytes+len(e.Record) <= q.maxBytes)) {
			q.appendLocked(e)
			q.mu.Unlock()
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (q *Queue) countDrop(n int, since time.Time) {
	if since.IsZero() {
		since = time.Now()
	}
	if q.loss.Dropped == 0 || since.Before(q.loss.DroppedSince) {
		q.loss.DroppedSince = since
	}
	q.loss.Dropped += n
}

func (q *Queue) appendLocked(e Entry) {
	if e.Carried > 0 && e.Since.IsZero() {
		e.Since = time.Now()
	} else if e.Carried == 0 {
		e.Since = time.Time{}
	}
	q.ring[(q.head+q.n)%len(q.ring)] = e
	q.n++
	q.bytes += len(e.Record)
	q.pushed++
	if q.n == 1 || q.n == q.wake {
		signal(q.ready)
	}
}

func (q *Queue) popLocked() Entry {
	e := q.ring[q.head]
	q.ring[q.head] = Entry{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.bytes -= len(e.Record)
	return e
}

// Take moves up to max entries into dst (appending) and returns it. It never blocks.
func (q *Queue) Take(dst []Entry, max int) []Entry {
	q.mu.Lock()
	for i := 0; i < max && q.n > 0; i++ {
		dst = append(dst, q.popLocked())
	}
	if q.n > 0 {
		signal(q.ready)
	}
	q.mu.Unlock()
	signal(q.room)
	return dst
}

// Len returns the number of entries waiting.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Pushed returns how many entries were ever accepted (for tests and metrics).
func (q *Queue) Pushed() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pushed
}

// TakeLoss returns the loss to announce and resets it.
func (q *Queue) TakeLoss() Loss {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.loss
	q.loss = Loss{}
	return l
}

// PeekLoss returns the loss counted so far without resetting it.
func (q *Queue) PeekLoss() Loss {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.loss
}

// AddLoss puts loss back to be announced later: the counts of a notice that could not
// be delivered, or the entries of a batch given up after retries (as lost).
func (q *Queue) AddLoss(l Loss) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l.Dropped > 0 {
		q.countDrop(l.Dropped, l.DroppedSince)
	}
	if l.Lost > 0 {
		if q.loss.Lost == 0 || l.LostSince.Before(q.loss.LostSince) {
			q.loss.LostSince = l.LostSince
		}
		q.loss.Lost += l.Lost
	}
	signal(q.ready)
}

// LoseEntries counts entries that left the queue but could not be delivered, runs
// their Commit hooks (their loss is now accounted for) and records them as lost.
func (q *Queue) LoseEntries(es []Entry, at time.Time) {
	l := Loss{LostSince: at}
	for i := range es {
		l.Lost += es[i].weight()
		if es[i].Carried > 0 && es[i].Since.Before(l.LostSince) {
			l.LostSince = es[i].Since
		}
	}
	q.Commit(es)
	if l.Lost > 0 {
		q.AddLoss(l)
	}
}

// Commit runs the Commit hooks of delivered entries.
func (q *Queue) Commit(es []Entry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range es {
		if es[i].Commit != nil {
			es[i].Commit()
		}
	}
}
