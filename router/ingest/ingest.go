// Package ingest accepts log messages: logplex-1 over HTTP (POST /logs) and syslog
// over TCP, TLS and UDP. Every accepted record is mapped to an app server-side (by
// token, or by host for load-balancer logs), split at Logplex's 10,000-byte line
// limit, re-encoded in the router's compact form and published in batches.
package ingest

import (
	"bytes"
	"context"
	"time"
	"unicode/utf8"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
)

// Limits shared by every ingest path.
type Limits struct {
	// MaxFrame bounds one frame (checked before it is read) [wire.DefaultMaxFrame].
	MaxFrame int
	// MaxLine splits longer message texts [10,000 bytes, as Logplex].
	MaxLine int
	// MaxBody bounds one HTTP body, compressed or not [wire.DefaultMaxBody].
	MaxBody int
}

func (l *Limits) defaults() {
	if l.MaxFrame <= 0 {
		l.MaxFrame = wire.DefaultMaxFrame
	}
	if l.MaxLine <= 0 || l.MaxLine > message.MaxLine {
		l.MaxLine = message.MaxLine
	}
	if l.MaxBody <= 0 {
		l.MaxBody = wire.DefaultMaxBody
	}
}

// batch collects encoded records for one app and publishes them together, so the
// app's locks are taken once per batch rather than once per message.
type batch struct {
	// ts parses TIMESTAMPs, remembering the last one's second: a connection's
	// records mostly share it.
	ts   wire.TimestampParser
	app  *dispatch.App
	buf  []byte
	ends []int
	recs [][]byte
	// origin is where every record of the batch came from (message.AppendOrigin),
	// when a collector said so; nil otherwise.
	origin []byte
}

// add encodes one message, split into MaxLine pieces, for app (publishing what was
// collected for another app first). It returns the number of messages added.
func (b *batch) add(app *dispatch.App, f *wire.Fields, source, proc []byte, now time.Time, maxLine int) int {
	if b.app != app {
		b.flush()
		b.app = app
	}
	// STRUCTURED-DATA rides along as the message's attributes (Scan checked it).
	m := message.Msg{Priority: f.Priority, Source: source, ProcID: proc, Attrs: f.StructuredData}
	m.Time = now.UnixMicro()
	if len(f.Timestamp) > 0 {
		if t, err := b.ts.Parse(f.Timestamp); err == nil {
			m.Time = t
		}
	}
	text := f.Text
	if !utf8.Valid(text) {
		// Strict RFC 5424 receivers refuse a MSG that is not UTF-8 (go-syslog does,
		// BOM or not), losing the line and its drain token: replace the bad bytes
		// (each run of them) with U+FFFD rather than let one bad byte cost the whole line.
		text = bytes.ToValidUTF8(text, []byte("\uFFFD"))
	}
	n := 0
	message.SplitText(text, maxLine, func(piece []byte) {
		m.Text = piece
		b.buf = message.Append(b.buf, &m)
		b.ends = append(b.ends, len(b.buf))
		n++
	})
	return n
}

// flush publishes the collected records.
func (b *batch) flush() {
	if b.collect() {
		b.app.PublishFrom(b.recs, b.origin)
		b.buf, b.ends = b.buf[:0], b.ends[:0]
	}
}

// flushWhenRoom publishes the collected records once the app's drains have room
// (dispatch.App.PublishWhenRoom) and returns how long that took.
func (b *batch) flushWhenRoom(ctx context.Context, limit time.Duration) (held time.Duration) {
	if b.collect() {
		held = b.app.PublishWhenRoom(ctx, b.recs, b.origin, limit)
		b.buf, b.ends = b.buf[:0], b.ends[:0]
	}
	return held
}

// collect makes recs the records collected, reporting whether there are any.
func (b *batch) collect() bool {
	if len(b.ends) == 0 {
		return false
	}
	b.recs = b.recs[:0]
	start := 0
	for _, end := range b.ends {
		b.recs = append(b.recs, b.buf[start:end])
		start = end
	}
	return true
}
