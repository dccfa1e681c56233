package session

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/router/message"
)

func TestSinkBoundsAndAnnouncesDrops(t *testing.T) {
	s := newSink(Filter{Source: "app", Dyno: "web"}, 2)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for i, proc := range []string{"web.1", "worker.1", "web.2", "web.3", "web.4", "web.5"} {
		s.Offer([][]byte{message.AppendStrings(nil, 190, at.Add(time.Duration(i)*time.Millisecond), "app", proc, proc)})
	}
	s.Offer([][]byte{message.AppendStrings(nil, 190, at, "kubeplex", "web.1", "filtered by source")})
	var got []string
	take := func() {
		got = got[:0]
		s.take(func(rec []byte) {
			m, err := message.Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(m.Source)+"["+string(m.ProcID)+"] "+string(m.Text))
		})
	}
	take()
	if len(got) != 3 || !strings.HasPrefix(got[0], "kubeplex[router] Error L11 (Tail buffer overflow) -> This tail session dropped 3 messages since ") ||
		!strings.HasSuffix(got[0], ".") || got[1] != "app[web.1] web.1" || got[2] != "app[web.2] web.2" {
		t.Fatalf("first take: %q", got)
	}
	// Room again, and no notice without new drops.
	s.Offer([][]byte{message.AppendStrings(nil, 190, at, "app", "web.9", "web.9")})
	take()
	if len(got) != 1 || got[0] != "app[web.9] web.9" {
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
	s := newSink(Filter{}, 8)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	later := time.Now().Add(time.Hour) // the last write "in the future": a long wait
	line := func() [][]byte { return [][]byte{message.AppendStrings(nil, 190, time.Now(), "app", "web.1", "x")} }

	// A quarter full already: no wait.
	s.Offer(line())
	s.Offer(line())
	if !s.coalesce(t.Context(), later, timer) {
		t.Fatal("coalesce with a quarter-full buffer reported its context done")
	}
	s.take(func([]byte) {})

	// Nearly empty: waits, until lines arriving meanwhile fill a quarter.
	s.Offer(line())
	<-s.notify
	done := make(chan bool, 1)
	go func() { done <- s.coalesce(t.Context(), later, timer) }()
	s.Offer(line())
	if !<-done {
		t.Fatal("coalesce ended by its context, not by the buffer filling")
	}
	s.take(func([]byte) {})

	// Nothing else comes: the context ends the wait.
	s.Offer(line())
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
		c.add(&m)
	}
	got, ok := parseCursor(string(c.append(nil)))
	if !ok || got.at != at.UnixMicro() || len(got.seen) != 2 || got.all {
		t.Fatalf("round trip of %q: %+v %v", c.append(nil), got, ok)
	}
	if old, ok := parseCursor("1795600800001000"); !ok || !old.all {
		t.Errorf("a bare time is a cursor with every line at it sent: %+v %v", old, ok)
	}
	for _, bad := range []string{"", "-1", "x", "12-zz", "12-", "12-1.", strings.Repeat("1", 400)} {
		if _, ok := parseCursor(bad); ok {
			t.Errorf("parseCursor(%q) accepted", bad)
		}
	}
	for i := range 17 { // more than MaxSeen lines in one µs: all count as sent
		m, _ := message.Decode(message.AppendStrings(nil, 190, at.Add(time.Second), "app", "web.1", fmt.Sprint(i)))
		c.add(&m)
	}
	if sec, seen := c.claims(); sec != at.Add(time.Second).UnixMicro() || seen != nil {
		t.Errorf("after 17 lines in one µs: since %d seen %v", sec, seen)
	}
}
