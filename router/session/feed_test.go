package session

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/message"
)

// TestFeedSharesFormattingAcrossTails: tails of one app in every format and with
// different filters read through one feed, and each gets exactly what formatting
// every record on its own gives (text and JSON byte for byte, events with the same
// data and a position per line); when the last tail leaves, the feed is gone.
func TestFeedSharesFormattingAcrossTails(t *testing.T) {
	rs := replicas(t, 1)
	r := rs[0]
	type tail struct {
		name   string
		format string
		claims session.Claims
		lines  chan string
		close  func()
	}
	tails := []*tail{
		{name: "text", format: "text", claims: session.Claims{Source: ""}},
		{name: "text web", format: "text", claims: session.Claims{Dyno: "web"}},
		{name: "json app", format: "json", claims: session.Claims{Source: "app"}},
		{name: "sse", format: "sse"},
		{name: "sse worker.1", format: "sse", claims: session.Claims{Dyno: "worker.1"}},
	}
	for _, tl := range tails {
		c := tl.claims
		c.Namespace, c.App, c.Tail = "shop", "web", true
		resp, err := http.Get(r.srv.URL + Path + sessionID(t, c) + "?format=" + tl.format)
		if err != nil {
			t.Fatal(err)
		}
		tl.lines, tl.close = make(chan string, 1000), func() { _ = resp.Body.Close() }
		t.Cleanup(tl.close) // before the server's Close, which waits for open streams
		go func() {
			defer close(tl.lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				tl.lines <- sc.Text()
			}
		}()
	}
	testenv.Eventually(t, "every tail joined the app's one feed", func() error {
		r.h.feeds.mu.Lock()
		defer r.h.feeds.mu.Unlock()
		if len(r.h.feeds.m) != 1 {
			return fmt.Errorf("%d feeds", len(r.h.feeds.m))
		}
		for _, f := range r.h.feeds.m {
			f.mu.Lock()
			n := len(f.sinks)
			f.mu.Unlock()
			if n != len(tails) {
				return fmt.Errorf("%d tails on the feed", n)
			}
		}
		return nil
	})

	at := time.Now().Truncate(time.Microsecond)
	recs := make([][]byte, 0, 30)
	for i := range 30 {
		src, proc := "app", []string{"web.1", "web.2", "worker.1"}[i%3]
		if i%5 == 4 {
			src = "kubeplex"
		}
		rec := message.AppendStrings(nil, 190, at.Add(time.Duration(i/2)*time.Second), src, proc, fmt.Sprintf("line %d \"quoted\" é", i))
		recs = append(recs, rec)
	}
	a, _ := r.d.App("shop/web")
	a.Publish(recs[:7])
	a.Publish(recs[7:])

	for _, tl := range tails {
		f := Filter{Source: tl.claims.Source, Dyno: tl.claims.Dyno}
		var want []string
		for _, rec := range recs {
			m, err := message.Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			if !f.Match(&m) {
				continue
			}
			enc := &encoder{f: formatText}
			if tl.format != "text" {
				enc.f = formatJSON
			}
			enc.record(rec, 0, 0)
			want = append(want, strings.TrimSuffix(string(enc.buf), "\n"))
		}
		var got []string
		var lastSeq uint64
		var id string
		for len(got) < len(want) {
			var l string
			select {
			case l = <-tl.lines:
			case <-time.After(testenv.WaitTimeout):
				t.Fatalf("%s: %d of %d lines", tl.name, len(got), len(want))
			}
			if tl.format != "sse" {
				got = append(got, l)
				continue
			}
			switch {
			case strings.HasPrefix(l, "id: "):
				id = l[4:]
			case l == "event: line":
				c, ok := parseCursor(id)
				if !ok || len(c.pos) != 1 || c.pos[0].History != a.History.ID() || c.pos[0].Seq <= lastSeq {
					t.Fatalf("%s: id %q after position %d", tl.name, id, lastSeq)
				}
				lastSeq = c.pos[0].Seq
			case strings.HasPrefix(l, "data: {\"time\""):
				var v map[string]any
				if err := json.Unmarshal([]byte(l[6:]), &v); err != nil {
					t.Fatalf("%s: %q: %v", tl.name, l, err)
				}
				got = append(got, l[6:])
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n%s\nwant\n%s", tl.name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	for _, tl := range tails {
		tl.close()
	}
	testenv.Eventually(t, "the feed is gone with its last tail", func() error {
		r.h.feeds.mu.Lock()
		defer r.h.feeds.mu.Unlock()
		if len(r.h.feeds.m) != 0 {
			return fmt.Errorf("%d feeds", len(r.h.feeds.m))
		}
		return nil
	})
}

// TestOutputWritesRunsInOrder: a tail's write sends runs of formatted lines straight
// from the sink's buffer (no copy) and the encoder's bytes for anything else (an L11
// notice, a peer's record) between them, in order.
func TestOutputWritesRunsInOrder(t *testing.T) {
	buf := []byte("a\nb\nc\nd\n")
	o := &output{enc: &encoder{f: formatText}}
	o.reset()
	o.add(entry{b: buf[0:2]})
	o.add(entry{b: buf[2:4]})
	o.add(entry{b: message.AppendStrings(nil, 190, t0, "app", "web.1", "raw"), raw: true})
	o.add(entry{raw: true, pos: recPos{1, 9}}) // a position passed: nothing to write
	o.add(entry{b: buf[4:6]})
	o.add(entry{b: buf[6:8]})
	parts := o.done()
	want := "a\nb\n2026-11-25T10:00:00.000000+00:00 app[web.1]: raw\nc\nd\n"
	if got := string(bytes.Join(parts, nil)); got != want || len(parts) != 3 || o.n != 5 {
		t.Fatalf("parts %q (%d lines), want %q in 3 parts", parts, o.n, want)
	}
	if &parts[0][0] != &buf[0] || &parts[2][0] != &buf[4] {
		t.Error("runs were copied")
	}
	// A write with no line: what the encoder wrote (a re-issued URL).
	o.reset()
	o.enc.f = formatSSE
	o.enc.session("http://r/sessions/x", t0)
	if parts := o.done(); len(parts) != 1 || !bytes.HasPrefix(parts[0], []byte("event: session\n")) {
		t.Fatalf("parts %q", parts)
	}
}
