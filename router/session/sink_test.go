package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/router/message"
)

func TestSinkBoundsAndAnnouncesDrops(t *testing.T) {
	s := newSink(Filter{Source: "app", Dyno: "web"}, 2, 7)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i, proc := range []string{"web.1", "worker.1", "web.2", "web.3", "web.4", "web.5"} {
		s.Offer(uint64(10+i), [][]byte{message.AppendStrings(nil, 190, at.Add(time.Duration(i)*time.Millisecond), "app", proc, proc)})
	}
	s.Offer(1, [][]byte{message.AppendStrings(nil, 190, at, "kubeplex", "web.1", "filtered by source")})
	var got []string
	take := func() {
		got = got[:0]
		s.take(func(rec []byte, p recPos) {
			if rec == nil {
				got = append(got, fmt.Sprintf("passed @%d:%d", p.hid, p.seq))
				return
			}
			m, err := message.Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s[%s] %s @%d:%d", m.Source, m.ProcID, m.Text, p.hid, p.seq))
		})
	}
	take()
	// The newest dropped position comes first (a cursor moves past what the reader
	// was told it lost), then the notice without a position, then each kept line with
	// its position in the history (ID 7).
	if len(got) != 4 || got[0] != "passed @7:15" ||
		!strings.HasPrefix(got[1], "kubeplex[router] Error L11 (Tail buffer overflow) -> This tail session dropped 3 messages since ") ||
		!strings.HasSuffix(got[1], ". @0:0") || got[2] != "app[web.1] web.1 @7:10" || got[3] != "app[web.2] web.2 @7:12" {
		t.Fatalf("first take: %q", got)
	}
	// Room again, and no notice without new drops.
	s.offer(9, 40, [][]byte{message.AppendStrings(nil, 190, at, "kubeplex", "web.8", "filtered"), message.AppendStrings(nil, 190, at, "app", "web.9", "web.9")})
	take()
	if len(got) != 1 || got[0] != "app[web.9] web.9 @9:41" {
		t.Fatalf("second take: %q", got)
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct{ query, accept, want string }{
		{"", "", "text"},
		{"", "*/*", "text"},
		{"", "text/event-stream", "sse"},
		{"", "application/x-ndjson", "json"},
		{"", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"},
		{"format=json", "text/html", "json"},
		{"format=sse", "", "sse"},
		{"format=xml", "", "error"},
	}
	for _, tt := range tests {
		r := httptestRequest(tt.query, tt.accept)
		f, err := negotiate(r)
		got := "error"
		if err == nil {
			got = f.name()
		}
		if got != tt.want {
			t.Errorf("negotiate(%q, %q) = %s, want %s", tt.query, tt.accept, got, tt.want)
		}
	}
}

// TestSinkCoalesce: a tail waits for more lines while little is buffered, but not
// once a quarter of its buffer is full (so coalescing never drops a line), and not
// past its context. The waits here are an hour long: the test passes only if each
// condition, not the clock, ends them.
func TestSinkCoalesce(t *testing.T) {
	s := newSink(Filter{}, 8, 7)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	later := time.Now().Add(time.Hour) // the last write "in the future": a long wait
	line := func() [][]byte { return [][]byte{message.AppendStrings(nil, 190, time.Now(), "app", "web.1", "x")} }

	// A quarter full already: no wait.
	s.Offer(1, line())
	s.Offer(1, line())
	if !s.coalesce(t.Context(), later, timer) {
		t.Fatal("coalesce with a quarter-full buffer reported its context done")
	}
	s.take(func([]byte, recPos) {})

	// Nearly empty: waits, until lines arriving meanwhile fill a quarter.
	s.Offer(1, line())
	<-s.notify
	done := make(chan bool, 1)
	go func() { done <- s.coalesce(t.Context(), later, timer) }()
	s.Offer(1, line())
	if !<-done {
		t.Fatal("coalesce ended by its context, not by the buffer filling")
	}
	s.take(func([]byte, recPos) {})

	// Nothing else comes: the context ends the wait.
	s.Offer(1, line())
	<-s.notify
	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- s.coalesce(ctx, later, timer) }()
	cancel()
	if <-done {
		t.Fatal("coalesce returned true after its context ended")
	}
}

func TestCursorRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	var c cursor
	for _, text := range []string{"a", "b", "a"} { // a repeat counts once
		m, _ := message.Decode(message.AppendStrings(nil, 190, at, "app", "web.1", text))
		c.add(&m, 0, 0)
	}
	got, ok := parseCursor(string(c.append(nil)))
	if !ok || got.at != at.UnixMicro() || len(got.seen) != 2 || got.all || got.pos != nil {
		t.Fatalf("round trip of %q: %+v %v", c.append(nil), got, ok)
	}
	// Positions: the newest per history, in the id after the time part.
	m, _ := message.Decode(message.AppendStrings(nil, 190, at.Add(-time.Hour), "app", "web.1", "late"))
	c.add(&m, 0xdeadbeef, 5)
	c.add(&m, 0x1, 0xffffffffff)
	c.add(&m, 0xdeadbeef, 6)
	id := string(c.append(nil))
	if !strings.HasSuffix(id, ",deadbeef:6,1:ffffffffff") || strings.Count(id, "-") != 1 {
		t.Fatalf("cursor with positions %q", id)
	}
	got, ok = parseCursor(id)
	if s, ok1 := got.after(0xdeadbeef); !ok || !ok1 || s != 6 || got.at != at.UnixMicro() || len(got.seen) != 2 {
		t.Fatalf("round trip of %q: %+v", id, got)
	}
	if _, ok := got.after(2); ok {
		t.Fatal("a position for a history the cursor never saw")
	}
	if c, ok := parseCursor("1795600800001000,a:1"); !ok || !c.all || len(c.pos) != 1 {
		t.Errorf("a bare time with a position: %+v %v", c, ok)
	}
	for i := range 20 { // more histories than MaxPos: the oldest placed is forgotten
		got.place(uint32(100+i), 1)
	}
	if _, ok := got.after(0xdeadbeef); ok || len(got.pos) != session.MaxPos {
		t.Fatalf("after 20 more histories: %d positions, first kept: %v", len(got.pos), ok)
	}
	if c, ok := parseCursor(string(got.append(nil))); !ok || len(c.pos) != session.MaxPos {
		t.Fatalf("a full cursor does not round-trip: %v %d", ok, len(c.pos))
	}
	if old, ok := parseCursor("1795600800001000"); !ok || !old.all {
		t.Errorf("a bare time is a cursor with every line at it sent: %+v %v", old, ok)
	}
	for _, bad := range []string{"", "-1", "x", "12-zz", "12-", "12-1.", strings.Repeat("1", 400),
		"12,", "12,a", "12,a:", "12,:1", "12,0:1", "12,a:1,", "12,1ffffffff:1", "12,a:-1", "12,a:1:2"} {
		if _, ok := parseCursor(bad); ok {
			t.Errorf("parseCursor(%q) accepted", bad)
		}
	}
	for i := range 17 { // more than MaxSeen lines in one µs: all count as sent
		m, _ := message.Decode(message.AppendStrings(nil, 190, at.Add(time.Second), "app", "web.1", fmt.Sprint(i)))
		c.add(&m, 0, 0)
	}
	if sec, seen, _ := c.claims(); sec != at.Add(time.Second).UnixMicro() || seen != nil {
		t.Errorf("after 17 lines in one µs: since %d seen %v", sec, seen)
	}
}

// TestDroppedLinesMoveTheCursor: a tail that dropped lines (and said so with L11)
// resumes after them, so a reconnect neither re-sends them nor, by re-sending up to
// its line limit, pushes out a late line that arrived while it was away (a browser
// test lost one so under load). Without the positions of dropped lines the cursor
// stayed at the last kept line.
func TestDroppedLinesMoveTheCursor(t *testing.T) {
	s := newSink(Filter{}, 2, 7)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i := range 5 {
		s.Offer(uint64(1+i), [][]byte{message.AppendStrings(nil, 190, at.Add(time.Duration(i)*time.Millisecond), "app", "web.1", fmt.Sprint("line ", i))})
	}
	// A peer's dropped line 9 of its history 3 (an empty numbered frame).
	s.skip(3, 9)
	enc := &encoder{f: formatSSE}
	s.take(func(rec []byte, p recPos) { enc.record(rec, p.hid, p.seq) })
	if !strings.Contains(string(enc.buf), "dropped 3 messages") {
		t.Fatalf("no L11 in %q", enc.buf)
	}
	// The id of the last event sent is what a reconnect resumes from.
	ids := strings.Split(string(enc.buf), "id: ")
	last := ids[len(ids)-1]
	c, ok := parseCursor(last[:strings.IndexByte(last, '\n')])
	if !ok {
		t.Fatalf("cursor %q", last)
	}
	for _, want := range []recPos{{7, 5}, {3, 9}} {
		if seq, ok := c.after(want.hid); !ok || seq != want.seq {
			t.Errorf("history %d: position %d (%v), want %d", want.hid, seq, ok, want.seq)
		}
	}
}
