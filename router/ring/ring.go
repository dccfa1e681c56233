// Package ring is a FIFO of variable-length byte records bounded by count, stored in
// pooled chunks: no heap object per record, so a full history of 1500 lines costs one
// index slot (8 bytes) plus the record bytes plus at most two partly used chunks.
// The router's per-app history and per-drain queues are both rings.
//
// A Ring is not safe for concurrent use; its owners hold a lock.
package ring

import "sync"

const (
	// MaxRecord is the largest record a ring stores.
	MaxRecord = 1<<16 - 1
	maxChunk  = 16 << 10
	minChunk  = 1 << 10
)

type entry struct {
	chunk uint32 // sequence number of the chunk holding the record
	off   uint16
	n     uint16
}

type chunk struct {
	seq uint32
	buf []byte  // len = bytes used, cap = chunk size
	box *[]byte // pool handle for buf, reused so returning a chunk allocates nothing
}

// Ring holds at most Max records; pushing into a full ring evicts the oldest.
type Ring struct {
	max     int
	idx     []entry // circular, len(idx) = capacity (grows up to max)
	head, n int     // oldest entry and count
	chunks  []chunk // oldest first
	nextSeq uint32
	live    int // bytes of live records
}

// New returns a ring of at most max records (max >= 1).
func New(max int) *Ring {
	if max < 1 {
		max = 1
	}
	return &Ring{max: max}
}

// Len returns the number of records held.
func (r *Ring) Len() int { return r.n }

// Max returns the record limit.
func (r *Ring) Max() int { return r.max }

// Bytes returns the bytes of live records.
func (r *Ring) Bytes() int { return r.live }

// Footprint estimates the memory the ring holds: chunk capacity plus the index.
func (r *Ring) Footprint() int {
	total := cap(r.idx) * 8
	for _, c := range r.chunks {
		total += cap(c.buf)
	}
	return total
}

// Push appends rec (copied), evicting the oldest record when full; it returns whether
// a record was evicted. Records longer than MaxRecord are refused (false, false).
func (r *Ring) Push(rec []byte) (evicted, ok bool) {
	return r.Push2(nil, rec)
}

// Push2 is Push of the record made of prefix followed by rec.
func (r *Ring) Push2(prefix, rec []byte) (evicted, ok bool) {
	n := len(prefix) + len(rec)
	if n > MaxRecord {
		return false, false
	}
	if r.n == r.max {
		r.popFront()
		evicted = true
	}
	c := r.tail(n)
	off := len(c.buf)
	c.buf = append(c.buf, prefix...)
	c.buf = append(c.buf, rec...)
	r.live += n
	if r.n == len(r.idx) {
		r.grow()
	}
	r.idx[(r.head+r.n)%len(r.idx)] = entry{chunk: c.seq, off: uint16(off), n: uint16(n)}
	r.n++
	return evicted, true
}

// tail returns a chunk with room for n more bytes, allocating one when needed.
func (r *Ring) tail(n int) *chunk {
	if k := len(r.chunks); k > 0 {
		c := &r.chunks[k-1]
		if cap(c.buf)-len(c.buf) >= n {
			return c
		}
	}
	// Chunk size follows the ring's live bytes so small rings stay small and big ones
	// waste at most two chunks of maxChunk.
	size := r.live / 8
	size = max(min(size, maxChunk), minChunk, n)
	box := getChunk(size)
	r.chunks = append(r.chunks, chunk{seq: r.nextSeq, buf: *box, box: box})
	r.nextSeq++
	return &r.chunks[len(r.chunks)-1]
}

func (r *Ring) grow() {
	size := max(min(2*len(r.idx), r.max), min(16, r.max))
	idx := make([]entry, size)
	for i := 0; i < r.n; i++ {
		idx[i] = r.idx[(r.head+i)%len(r.idx)]
	}
	r.idx, r.head = idx, 0
}

func (r *Ring) popFront() {
	e := r.idx[r.head]
	r.head = (r.head + 1) % len(r.idx)
	r.n--
	r.live -= int(e.n)
	// Free the chunks no live record points into.
	keep := e.chunk + 1
	if r.n > 0 {
		keep = r.idx[r.head].chunk
	}
	i := 0
	for i < len(r.chunks) && r.chunks[i].seq < keep && i < len(r.chunks)-1 {
		putChunk(r.chunks[i])
		i++
	}
	if r.n == 0 && len(r.chunks) > 0 {
		// Empty: keep the last chunk for reuse but rewind it.
		last := r.chunks[len(r.chunks)-1]
		for _, c := range r.chunks[i : len(r.chunks)-1] {
			putChunk(c)
		}
		last.buf = last.buf[:0]
		r.chunks = append(r.chunks[:0], last)
		return
	}
	if i > 0 {
		r.chunks = append(r.chunks[:0], r.chunks[i:]...)
	}
}

func (r *Ring) at(k int) []byte {
	e := r.idx[(r.head+k)%len(r.idx)]
	c := &r.chunks[e.chunk-r.chunks[0].seq]
	return c.buf[e.off : int(e.off)+int(e.n) : int(e.off)+int(e.n)]
}

// Range calls fn with records from the k-th oldest on, oldest first, until fn returns
// false. The slices are valid only during the call.
func (r *Ring) Range(k int, fn func(rec []byte) bool) {
	for ; k < r.n; k++ {
		if !fn(r.at(k)) {
			return
		}
	}
}

// Pop removes up to maxN records from the front whose total cost (length plus
// overhead each) stays within maxBytes (at least one record is popped when any is
// held), calling fn with each before it is released. It returns the number popped.
func (r *Ring) Pop(maxN, maxBytes, overhead int, fn func(rec []byte)) int {
	popped, size := 0, 0
	for r.n > 0 && popped < maxN {
		rec := r.at(0)
		if popped > 0 && size+len(rec)+overhead > maxBytes {
			break
		}
		size += len(rec) + overhead
		fn(rec)
		r.popFront()
		popped++
	}
	return popped
}

// Resize changes the record limit, evicting the oldest records above it; it returns
// how many were evicted.
func (r *Ring) Resize(max int) int {
	if max < 1 {
		max = 1
	}
	evicted := 0
	for r.n > max {
		r.popFront()
		evicted++
	}
	r.max = max
	if len(r.idx) > max {
		idx := make([]entry, max)
		for i := 0; i < r.n; i++ {
			idx[i] = r.idx[(r.head+i)%len(r.idx)]
		}
		r.idx, r.head = idx, 0
	}
	return evicted
}

// Reset drops every record and returns the chunks to the pool.
func (r *Ring) Reset() {
	for _, c := range r.chunks {
		putChunk(c)
	}
	r.chunks, r.idx, r.head, r.n, r.live = nil, nil, 0, 0, 0
}

// Pools by size class (powers of two from minChunk to maxChunk); larger chunks, used
// only for records over maxChunk, are left to the garbage collector.
var pools [6]sync.Pool

func class(size int) int {
	c, s := 0, minChunk
	for s < size && c < len(pools) {
		s <<= 1
		c++
	}
	return c
}

func getChunk(size int) *[]byte {
	c := class(size)
	if c >= len(pools) {
		b := make([]byte, 0, size)
		return &b
	}
	if b, ok := pools[c].Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, minChunk<<c)
	return &b
}

func putChunk(ch chunk) {
	c := class(cap(ch.buf))
	if c >= len(pools) || cap(ch.buf) != minChunk<<c || ch.box == nil {
		return
	}
	*ch.box = ch.buf[:0]
	pools[c].Put(ch.box)
}
