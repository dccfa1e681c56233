package session

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

// Filter is a session's source and dyno filters.
type Filter struct {
	Source string
	Dyno   string
	// Since skips records at or before it (µs since the epoch; 0: none); with Seen,
	// of the records at exactly Since only those whose LineHash is in Seen.
	Since int64
	Seen  []uint32
}

// Match reports whether a decoded record passes.
func (f *Filter) Match(m *message.Msg) bool {
	return (f.Source == "" || string(m.Source) == f.Source) && session.MatchDyno(f.Dyno, m.ProcID) &&
		(m.Time > f.Since || (m.Time == f.Since && len(f.Seen) > 0 && !slices.Contains(f.Seen, LineHash(m))))
}

// DefaultBufferLines bounds a tail session's buffer: beyond it, new lines are dropped
// and counted, and the reader is told in-band (L11).
const DefaultBufferLines = 10000

// maxBufferBytes bounds the buffer's memory whatever the line count.
const maxBufferBytes = 8 << 20

// writeGap is the least time between two writes of a tail stream while little is
// buffered: a busy app's lines arrive a batch at a time (100 a second at 10,000
// lines/s), and a write and flush per batch per tail was most of a tail's cost (a
// syscall each). Readers are people and browsers (one repaint per frame): 50 ms
// adds nothing they see. A buffer a quarter full is written at once, so coalescing
// never costs a line (L11).
const writeGap = 50 * time.Millisecond

// sink is a tail session's bounded buffer. Offer is called from ingest (under the
// app's history lock) and from peer readers; it filters, copies into an arena and
// never waits. The session's writer takes everything at once and swaps arenas.
// Each record keeps its position (history ID and sequence number) for the cursor.
type sink struct {
	filter Filter
	max    int
	notify chan struct{}
	// dropCounter counts drops as they are announced (nil: not counted).
	dropCounter prometheus.Counter
	// local is the ID of the history this sink subscribes to (Offer's records).
	local uint32

	// kind is the format a session's sink is written in: lines a feed hands it
	// (offerFed) are already formatted for it; records offered (a peer's lines, the
	// history's for a peer call's sink) are formatted by the writer.
	kind format
	fed  bool // a feed writes to it: entries carry meta

	mu        sync.Mutex
	buf       []byte
	ends      []int
	pos       []recPos
	meta      []entryMeta // per entry, for sinks a feed writes to (nil otherwise)
	dropped   int64
	dropSince time.Time
	// passed holds, per history, the newest position dropped (or skipped for a
	// peer) since the last take: the cursor moves past lines the reader was told it
	// lost, so a reconnect neither re-sends them nor, by re-sending them, pushes a
	// late line out of the newest lines it asks for.
	passed    []recPos
	spare     []byte
	spareEnds []int
	sparePos  []recPos
	spareMeta []entryMeta
}

// entryMeta says what an entry of a fed sink is: a formatted line (its time and
// LineHash, for an event stream's cursor) or a record (raw).
type entryMeta struct {
	at   int64
	hash uint32
	raw  bool
}

// entry is one buffered entry as take hands it over: a record (raw: an L11 notice, a
// peer's line, anything in a sink no feed writes to) or a line the feed formatted,
// with its time and LineHash. b is nil for a position passed without a line.
type entry struct {
	b    []byte
	raw  bool
	pos  recPos
	at   int64
	hash uint32
}

// recPos is where a record stands in its history (hid 0: nowhere).
type recPos struct {
	hid uint32
	seq uint64
}

func newSink(f Filter, maxLines int, local uint32) *sink {
	if maxLines <= 0 {
		maxLines = DefaultBufferLines
	}
	return &sink{filter: f, max: maxLines, notify: make(chan struct{}, 1), local: local}
}

// newFedSink is a session's tail sink, in format k, that a feed writes local lines to.
func newFedSink(f Filter, maxLines int, local uint32, k format) *sink {
	s := newSink(f, maxLines, local)
	s.kind, s.fed = k, true
	return s
}

// Offer keeps a copy of each record that passes the filter while there is room, and
// counts the others it had to drop. The records are lines first, first+1, … of the
// local history.
func (s *sink) Offer(first uint64, recs [][]byte) {
	s.offer(s.local, first, recs)
}

// offer is Offer of lines of history hid (hid 0: lines without a position).
func (s *sink) offer(hid uint32, first uint64, recs [][]byte) {
	kept := false
	// Without a filter nothing needs decoding here: ingest's records are valid (the
	// writer decodes each record it sends, and skips one that is not), and a full
	// buffer then costs a counter per line, not a decode per line per tail.
	all := s.filter.Source == "" && s.filter.Dyno == "" && s.filter.Since == 0
	s.mu.Lock()
	for i, rec := range recs {
		if !all {
			m, err := message.Decode(rec)
			if err != nil || !s.filter.Match(&m) {
				continue
			}
		}
		if len(s.ends) >= s.max || len(s.buf)+len(rec) > maxBufferBytes {
			if s.dropped == 0 {
				s.dropSince = time.Now()
			}
			s.dropped++
			if hid != 0 {
				s.pass(hid, first+uint64(i))
			}
			continue
		}
		s.buf = append(s.buf, rec...)
		s.ends = append(s.ends, len(s.buf))
		p := recPos{}
		if hid != 0 {
			p = recPos{hid, first + uint64(i)}
		}
		s.pos = append(s.pos, p)
		if s.fed {
			s.meta = append(s.meta, entryMeta{raw: true})
		}
		kept = true
	}
	s.mu.Unlock()
	if kept {
		s.wake()
	}
}

func (s *sink) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// offerFed keeps, of a batch of local lines a feed prepared (formatted in arena),
// those that pass the filter while there is room, as offer does for records.
func (s *sink) offerFed(lines []fedLine, arena []byte) {
	all := s.filter.Source == "" && s.filter.Dyno == "" && s.filter.Since == 0
	kept := false
	s.mu.Lock()
	for i := range lines {
		l := &lines[i]
		if !all && !s.filter.Match(&l.m) {
			continue
		}
		var b []byte
		switch s.kind {
		case formatText:
			b = arena[l.textStart:l.textEnd]
		case formatJSON:
			b = arena[l.jsonStart:l.jsonEnd]
		default:
			b = arena[l.jsonStart : l.jsonEnd-1] // an event's data: no newline
		}
		if len(s.ends) >= s.max || len(s.buf)+len(b) > maxBufferBytes {
			if s.dropped == 0 {
				s.dropSince = time.Now()
			}
			s.dropped++
			s.pass(s.local, l.seq)
			continue
		}
		s.buf = append(s.buf, b...)
		s.ends = append(s.ends, len(s.buf))
		s.pos = append(s.pos, recPos{s.local, l.seq})
		s.meta = append(s.meta, entryMeta{at: l.m.Time, hash: l.hash})
		kept = true
	}
	s.mu.Unlock()
	if kept {
		s.wake()
	}
}

// pass records that line seq of history hid is behind the reader (s.mu held).
func (s *sink) pass(hid uint32, seq uint64) {
	for i := range s.passed {
		if s.passed[i].hid == hid {
			s.passed[i].seq = max(s.passed[i].seq, seq)
			return
		}
	}
	s.passed = append(s.passed, recPos{hid, seq})
}

// skip is a position without a record: a peer dropped line seq of history hid for
// this session (and announces it with its own L11).
func (s *sink) skip(hid uint32, seq uint64) {
	s.mu.Lock()
	s.pass(hid, seq)
	s.mu.Unlock()
	s.wake()
}

// len is how many records are buffered.
func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ends)
}

// coalesce waits, after a notification, until writeGap has passed since last or
// the buffer is a quarter full, so that one write carries many batches. It returns
// false when ctx ended.
func (s *sink) coalesce(ctx context.Context, last time.Time, timer *time.Timer) bool {
	for {
		wait := writeGap - time.Since(last)
		if wait <= 0 || s.len() >= s.max/4 {
			return true
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
			return true
		case <-s.notify: // more came: look at the buffer again
			timer.Stop()
		}
	}
}

// take hands over what is buffered: records (valid until the next take) with their
// positions, and the drops since the last take. Positions the reader passed without
// a record come first, as fn(nil, p) (a cursor moves to the newest position it is
// given per history), then an L11 notice for the drops, without a position, then
// the records.
func (s *sink) take(fn func(rec []byte, p recPos)) {
	s.takeEntries(func(e entry) { fn(e.b, e.pos) })
}

// takeEntries is take for sinks a feed writes to: entries say whether they are
// records or formatted lines.
func (s *sink) takeEntries(fn func(e entry)) {
	s.mu.Lock()
	buf, ends, pos, meta := s.buf, s.ends, s.pos, s.meta
	dropped, since := s.dropped, s.dropSince
	passed := s.passed
	s.buf, s.ends, s.pos, s.meta = s.spare[:0], s.spareEnds[:0], s.sparePos[:0], s.spareMeta[:0]
	s.dropped, s.passed = 0, nil
	s.mu.Unlock()
	for _, p := range passed {
		fn(entry{raw: true, pos: p})
	}
	if dropped > 0 {
		if s.dropCounter != nil {
			s.dropCounter.Add(float64(dropped))
		}
		fn(entry{b: L11(dropped, since, time.Now()), raw: true})
	}
	start := 0
	for i, end := range ends {
		e := entry{b: buf[start:end], raw: true, pos: pos[i]}
		if len(meta) == len(ends) {
			e.raw, e.at, e.hash = meta[i].raw, meta[i].at, meta[i].hash
		}
		fn(e)
		start = end
	}
	s.mu.Lock()
	s.spare, s.spareEnds, s.sparePos, s.spareMeta = buf, ends, pos, meta
	s.mu.Unlock()
}

// L11 returns the record of Logplex's tail-overflow notice, word for word.
func L11(n int64, since, now time.Time) []byte {
	text := make([]byte, 0, 128)
	text = append(text, "Error L11 (Tail buffer overflow) -> This tail session dropped "...)
	text = strconv.AppendInt(text, n, 10)
	text = append(text, " messages since "...)
	text = wire.AppendTimestamp(text, since.UTC())
	text = append(text, '.')
	return message.AppendStrings(nil, wire.PriorityError, now, message.SourcePlatform, message.ProcRouter, string(text))
}
