package drain

import (
	"encoding/binary"
	"strconv"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/ring"
)

// DefaultQueueSize is Logplex's drain buffer: 1024 messages.
const DefaultQueueSize = 1024

// start anchors the monotonic clock the queue stamps records with.
var start = time.Now()

// Nanotime returns monotonic nanoseconds since the process started.
func Nanotime() int64 { return int64(time.Since(start)) }

// Queue is a drain's bounded buffer. When full it drops the oldest message and
// remembers how many it dropped since when, for the L10 notice.
type Queue struct {
	mu      sync.Mutex
	r       *ring.Ring
	pending int64     // dropped, not yet announced
	since   time.Time // first unannounced drop
	closed  bool
	stats   *Stats
	// notify has room for one token: a push wakes the runner without blocking.
	notify chan struct{}
}

// NewQueue returns a queue of size messages accounting into st.
func NewQueue(size int, st *Stats) *Queue {
	if size <= 0 {
		size = DefaultQueueSize
	}
	return &Queue{r: ring.New(size), stats: st, notify: make(chan struct{}, 1)}
}

// wake signals the runner without blocking.
func (q *Queue) wake() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// push offers drain records (message.AppendWire) to the drain. It never blocks on
// delivery: a full queue drops its oldest records, which is what keeps a slow drain
// from slowing ingest. It reports whether the queue is more than half full. The
// caller (Runner.Offer) wakes the runner.
func (q *Queue) push(recs [][]byte) (busy bool) {
	var stamp [8]byte
	binary.LittleEndian.PutUint64(stamp[:], uint64(Nanotime()))
	var dropped int64
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.stats.Offered.Add(int64(len(recs)))
		q.stats.Dropped.Add(int64(len(recs)))
		return false
	}
	for _, rec := range recs {
		ev, ok := q.r.Push2(stamp[:], rec)
		if ev || !ok {
			dropped++
		}
	}
	if dropped > 0 {
		q.addDropsLocked(dropped, time.Now())
	}
	busy = q.r.Len() > q.r.Max()/2
	q.mu.Unlock()
	q.stats.Offered.Add(int64(len(recs)))
	q.stats.Dropped.Add(dropped)
	return busy
}

func (q *Queue) addDropsLocked(n int64, since time.Time) {
	if q.pending == 0 || since.Before(q.since) {
		q.since = since
	}
	q.pending += n
}

// Dropped records n messages lost after they left the queue (a refused batch, or
// cut off by shutdown); they are announced like overflow drops.
func (q *Queue) Dropped(n int64) {
	if n <= 0 {
		return
	}
	q.mu.Lock()
	q.addDropsLocked(n, time.Now())
	q.mu.Unlock()
	q.stats.Dropped.Add(n)
}

// restoreNotice puts back an announcement whose batch did not get through.
func (q *Queue) restoreNotice(n int64, since time.Time) {
	q.mu.Lock()
	q.addDropsLocked(n, since)
	q.mu.Unlock()
}

// Len returns the number of queued messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.r.Len()
}

// hasWork reports whether Take would return something: queued messages or drops
// still to announce.
func (q *Queue) hasWork() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.r.Len() > 0 || q.pending > 0
}

func (q *Queue) max() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.r.Max()
}

// Notify is signalled after pushes.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// takeDirect is push followed by Take for the case where the queue is empty and
// recs fit in one batch: the records are framed straight into b instead of being
// copied into the ring and out again. It does nothing and reports false otherwise.
func (q *Queue) takeDirect(recs [][]byte, b *Batch, lim Limits, host string) (notice int64, since time.Time, ok bool) {
	size := 0
	for _, rec := range recs {
		if len(rec)+8 > ring.MaxRecord {
			return 0, time.Time{}, false // the ring refuses it; let push count it
		}
		size += len(rec) + len(host) + 6
	}
	// One message and 300 bytes spare for an L10 notice.
	if len(recs)+1 > lim.Messages || size+300 > lim.Bytes {
		return 0, time.Time{}, false
	}
	q.mu.Lock()
	if q.closed || q.r.Len() > 0 {
		q.mu.Unlock()
		return 0, time.Time{}, false
	}
	notice, since = q.pending, q.since
	q.pending = 0
	q.mu.Unlock()
	b.Reset()
	if notice > 0 {
		var l10 [256]byte
		b.AddRecord(appendL10(l10[:0], notice, since), host)
		b.Notice, b.NoticeCount = true, notice
	}
	for _, rec := range recs {
		b.AddRecord(rec, host)
	}
	b.Enqueued = Nanotime()
	q.stats.Offered.Add(int64(len(recs)))
	return notice, since, true
}

// Take moves up to lim into b (which it resets) as frames with host in HOSTNAME.
// When drops are pending, the batch starts with an L10 notice, counted in lim, and
// Take returns the count it announces and since when, so the caller can put it back
// if the batch fails.
func (q *Queue) Take(b *Batch, lim Limits, host string) (notice int64, since time.Time) {
	b.Reset()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending > 0 {
		notice, since = q.pending, q.since
		q.pending = 0
		var l10 [256]byte
		b.AddRecord(appendL10(l10[:0], notice, since), host)
		b.Notice, b.NoticeCount = true, notice
	}
	first := true
	// A queue record is an 8-byte enqueue stamp and a 2-byte offset before the record;
	// its frame adds the host and a length prefix of at most 6 bytes.
	grow := len(host) + 6 - 10
	q.r.Pop(lim.Messages-b.Len(), lim.Bytes-b.Size(), grow, func(rec []byte) {
		if first {
			b.Enqueued = int64(binary.LittleEndian.Uint64(rec[:8]))
			first = false
		}
		b.AddRecord(rec[8:], host)
	})
	return notice, since
}

// close refuses further pushes and returns how many messages were still queued,
// which are then dropped.
func (q *Queue) close() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	n := q.r.Len()
	q.r.Reset()
	return n
}

// reopen lets a queue that was handed from one runner to the next accept again.
func (q *Queue) reopen() {
	q.mu.Lock()
	q.closed = false
	q.mu.Unlock()
}

func appendL10Text(dst []byte, n int64, since time.Time) []byte {
	dst = append(dst, "Error L10 (output buffer overflow): "...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, " messages dropped since "...)
	dst = wire.AppendTimestamp(dst, since.UTC())
	return append(dst, '.')
}

func appendL10(dst []byte, n int64, since time.Time) []byte {
	var text [128]byte
	m := message.Msg{Priority: wire.PriorityError, Time: time.Now().UnixMicro(), Source: []byte(message.SourcePlatform),
		ProcID: []byte(message.ProcRouter), Text: appendL10Text(text[:0], n, since)}
	return message.AppendWire(dst, &m)
}
