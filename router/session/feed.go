package session

import (
	"sync"

	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/history"
	"github.com/kubeplex/kubeplex/router/message"
)

// feed is the one subscriber of an app's history for every tail session of that app
// on this replica. It decodes each new line once, formats it once per output format
// some tail reads (text, or the JSON object JSON lines and event streams share) and
// hands those bytes to every tail whose filter passes it: with ten tails on a busy
// app a line costs one decode and one format plus ten copies, where each tail used to
// decode and format it on its own. Peer calls (servePeer) still subscribe on their
// own: they send records, not formatted lines.
type feed struct {
	cancel func() // its history subscription

	mu    sync.Mutex
	sinks []*sink
	text  bool // some tail reads text
	json  bool // some tail reads JSON lines or events
	sse   bool // some tail reads events (needs each line's LineHash)
	enc   encoder
	lines []fedLine
	arena []byte
}

// fedLine is one line of a batch as the feed prepared it: its decoded form, its
// number, and where its formatted bytes are in the arena: the text line and the
// JSON object, each with its newline (an event's data is the object without it).
type fedLine struct {
	m         message.Msg
	seq       uint64
	hash      uint32
	textStart int
	textEnd   int
	jsonStart int
	jsonEnd   int
}

var _ history.Subscriber = (*feed)(nil)

// Offer runs under the history's lock, on ingest's goroutine: it formats and copies,
// and never waits (a full tail drops, as before).
func (f *feed) Offer(first uint64, recs [][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sinks) == 0 {
		return
	}
	f.lines, f.arena = f.lines[:0], f.arena[:0]
	for i, rec := range recs {
		m, err := message.Decode(rec)
		if err != nil {
			continue // never for ingest's records; the writer skipped such a record before
		}
		l := fedLine{m: m, seq: first + uint64(i)}
		if f.text {
			l.textStart = len(f.arena)
			f.arena = append(f.enc.appendText(f.arena, &m), '\n')
			l.textEnd = len(f.arena)
		}
		if f.json {
			l.jsonStart = len(f.arena)
			f.arena = append(f.enc.appendJSON(f.arena, &m), '\n')
			l.jsonEnd = len(f.arena)
		}
		if f.sse {
			l.hash = LineHash(&m)
		}
		f.lines = append(f.lines, l)
	}
	for _, s := range f.sinks {
		s.offerFed(f.lines, f.arena)
	}
}

func (f *feed) add(s *sink) {
	f.mu.Lock()
	f.sinks = append(f.sinks, s)
	f.wants()
	f.mu.Unlock()
}

// remove drops s and reports whether no tail is left.
func (f *feed) remove(s *sink) (empty bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.sinks {
		if x == s {
			f.sinks = append(f.sinks[:i], f.sinks[i+1:]...)
			break
		}
	}
	f.wants()
	return len(f.sinks) == 0
}

// wants recomputes which formats the tails read (f.mu held).
func (f *feed) wants() {
	f.text, f.json, f.sse = false, false, false
	for _, s := range f.sinks {
		switch s.kind {
		case formatText:
			f.text = true
		case formatJSON:
			f.json = true
		case formatSSE:
			f.json, f.sse = true, true
		}
	}
}

// feeds are the live feeds by history (a history made again gets a new one).
type feeds struct {
	mu sync.Mutex
	m  map[*history.History]*feed
}

// join subscribes tail to app's feed (made on first use) and takes the snapshot with
// fn in the same step, as History.Join says; it returns the newest sequence number
// then and the function that leaves the feed.
func (fs *feeds) join(app *dispatch.App, fn func(seq uint64, rec []byte) bool, tail *sink) (last uint64, leave func()) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h := app.History
	f := fs.m[h]
	if f == nil {
		f = &feed{}
		_, f.cancel = h.Subscribe(func(uint64, []byte) bool { return false }, f)
		if fs.m == nil {
			fs.m = map[*history.History]*feed{}
		}
		fs.m[h] = f
	}
	last = h.Join(fn, func() { f.add(tail) })
	return last, func() {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if f.remove(tail) {
			f.cancel()
			delete(fs.m, h)
		}
	}
}
