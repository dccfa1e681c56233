package session

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

type format int

const (
	formatText format = iota
	formatJSON
	formatSSE
	formatHTML
)

func (f format) name() string {
	return [...]string{"text", "json", "sse", "html"}[f]
}

func (f format) contentType() string {
	return [...]string{"text/plain; charset=utf-8", "application/x-ndjson", "text/event-stream", "text/html; charset=utf-8"}[f]
}

var errFormat = errors.New("unknown format; use text, json, sse or html")

// negotiate picks the format: ?format= wins, then the first media type of Accept
// that is known (browsers list text/html first, EventSource sends
// text/event-stream, curl sends */*), then text/plain.
func negotiate(r *http.Request) (format, error) {
	if q := r.URL.Query().Get("format"); q != "" {
		switch q {
		case "text":
			return formatText, nil
		case "json":
			return formatJSON, nil
		case "sse":
			return formatSSE, nil
		case "html":
			return formatHTML, nil
		}
		return 0, errFormat
	}
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/event-stream":
			return formatSSE, nil
		case "application/x-ndjson", "application/json":
			return formatJSON, nil
		case "text/html":
			return formatHTML, nil
		case "text/plain", "text/*", "*/*":
			return formatText, nil
		}
	}
	return formatText, nil
}

// jsonLine is one line in JSON lines and in SSE "line" events; a line with
// attributes also has "attrs" (appendAttrs).
type jsonLine struct {
	Time    string `json:"time"`
	Source  string `json:"source"`
	Dyno    string `json:"dyno"`
	Message string `json:"message"`
	Notice  string `json:"notice,omitempty"`
}

// encoder appends records in one format; cur is where the stream stands.
type encoder struct {
	f   format
	buf []byte
	cur cursor
	ts  []byte
	// sec and secText: the last whole second formatted ("2006-01-02T15:04:05"), kept
	// because a busy stream's lines mostly share it and the calendar arithmetic was
	// a quarter of a tail's cost at 1M lines/s.
	sec     int64
	secText []byte
}

// maxCachedMicros bounds the times appendTime formats itself (years 1970-9999);
// others go through wire.AppendTimestampMicro, which also clamps the range.
const maxCachedMicros = 253402300800 * 1e6

// appendTime appends us (µs since the epoch) as wire.AppendTimestampMicro does.
func (e *encoder) appendTime(dst []byte, us int64) []byte {
	if us < 0 || us >= maxCachedMicros {
		return wire.AppendTimestampMicro(dst, us)
	}
	sec := us / 1e6
	if e.secText == nil || sec != e.sec {
		e.secText = wire.AppendTimestampMicro(e.secText[:0], sec*1e6)[:19]
		e.sec = sec
	}
	dst = append(dst, e.secText...)
	frac := us - sec*1e6
	var b [7]byte
	b[0] = '.'
	for i := 6; i >= 1; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	dst = append(dst, b[:]...)
	return append(dst, "+00:00"...)
}

// appendText is message.AppendText with appendTime.
func (e *encoder) appendText(dst []byte, m *message.Msg) []byte {
	dst = e.appendTime(dst, m.Time)
	dst = append(dst, ' ')
	dst = append(dst, m.Source...)
	dst = append(dst, '[')
	dst = append(dst, m.ProcID...)
	dst = append(dst, ']', ':', ' ')
	return append(dst, m.Text...)
}

// record appends rec, line seq of history hid (0, 0: a line without a position).
func (e *encoder) record(rec []byte, hid uint32, seq uint64) {
	if rec == nil { // a position passed without a record (lines dropped, announced as L11)
		if e.f == formatSSE && hid != 0 {
			e.cur.place(hid, seq)
		}
		return
	}
	m, err := message.Decode(rec)
	if err != nil {
		return
	}
	if e.f == formatSSE { // only event streams carry (and re-issue) a cursor
		e.cur.add(&m, hid, seq)
	}
	switch e.f {
	case formatText:
		e.buf = e.appendText(e.buf, &m)
		e.buf = append(e.buf, '\n')
	case formatJSON:
		e.buf = e.appendJSON(e.buf, &m)
		e.buf = append(e.buf, '\n')
	case formatSSE:
		e.buf = append(e.buf, "id: "...)
		e.buf = e.cur.append(e.buf)
		e.buf = append(e.buf, "\nevent: line\ndata: "...)
		e.buf = e.appendJSON(e.buf, &m)
		e.buf = append(e.buf, "\n\n"...)
	}
}

// line appends an entry a sink handed over: a line a feed formatted for this format
// (text or JSON lines with its newline, an event's JSON object), or else a record.
func (e *encoder) line(en entry) {
	if en.raw || en.b == nil {
		e.record(en.b, en.pos.hid, en.pos.seq)
		return
	}
	switch e.f {
	case formatText, formatJSON: // the line with its newline
		e.buf = append(e.buf, en.b...)
	case formatSSE:
		e.cur.addAt(en.at, en.hash, en.pos.hid, en.pos.seq)
		e.buf = append(e.buf, "id: "...)
		e.buf = e.cur.append(e.buf)
		e.buf = append(e.buf, "\nevent: line\ndata: "...)
		e.buf = append(e.buf, en.b...)
		e.buf = append(e.buf, "\n\n"...)
	}
}

func (e *encoder) appendJSON(dst []byte, m *message.Msg) []byte {
	e.ts = e.appendTime(e.ts[:0], m.Time)
	l := jsonLine{Time: string(e.ts), Source: string(m.Source), Dyno: string(m.ProcID), Message: string(m.Text), Notice: notice(m)}
	b, _ := json.Marshal(&l) // strings only; invalid UTF-8 becomes U+FFFD
	if len(m.Attrs) == 0 {
		return append(dst, b...)
	}
	dst = append(dst, b[:len(b)-1]...) // the object without its closing brace
	return append(appendAttrs(dst, m), '}')
}

// appendAttrs appends `,"attrs":{…}`: the message's attributes (its RFC 5424
// STRUCTURED-DATA) as one flat object of strings, in the order they came. An
// OpenTelemetry record's fields (otel@32473: trace_id, span_id, severity_text, …)
// and attributes (log@32473) keep their names, its resource's attributes
// (res@32473) are named "resource.<name>", and any other element's parameters
// "<SD-ID>.<name>". A name already given keeps its first value.
func appendAttrs(dst []byte, m *message.Msg) []byte {
	dst = append(dst, `,"attrs":{`...)
	var keys []string
	for a := range m.Attributes() {
		var key string
		switch string(a.ID) {
		case wire.SDIDOtel, wire.SDIDLog:
			key = string(a.Name)
		case wire.SDIDResource:
			key = "resource." + string(a.Name)
		default:
			key = string(a.ID) + "." + string(a.Name)
		}
		if slices.Contains(keys, key) {
			continue
		}
		if len(keys) > 0 {
			dst = append(dst, ',')
		}
		keys = append(keys, key)
		dst = appendJSONString(dst, key)
		dst = append(dst, ':')
		dst = appendJSONString(dst, string(a.Value))
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string, invalid UTF-8 as U+FFFD (as
// encoding/json does).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// notice names the platform notice a line is ("L11"), or "".
func notice(m *message.Msg) string {
	if string(m.Source) != message.SourcePlatform {
		return ""
	}
	t := m.Text
	if len(t) < 10 || string(t[:7]) != "Error L" || t[7] != '1' || t[8] < '0' || t[8] > '9' || t[9] != ' ' {
		return ""
	}
	return string(t[6:9])
}

func (e *encoder) session(url string, exp time.Time) {
	if e.f != formatSSE {
		return
	}
	b, _ := json.Marshal(struct {
		URL       string `json:"url"`
		ExpiresAt string `json:"expiresAt"`
	}{url, exp.UTC().Format(time.RFC3339)})
	e.buf = append(e.buf, "event: session\ndata: "...)
	e.buf = append(e.buf, b...)
	e.buf = append(e.buf, "\n\n"...)
}

// tail writes an SSE "tail" event: history is complete and the tail follows. Its id
// is the cursor there, with every replica's position where its tail began (parts'
// ends), so a reconnect from it resumes each replica exactly, even one that has sent
// no line yet. A stream that has sent no line has no time yet: now stands for it,
// so a replica the cursor has no position for resumes with what it received after
// the tail began, not with history the reader did not ask for.
func (e *encoder) tail(parts []part, now int64) {
	if e.f != formatSSE {
		return
	}
	for _, p := range parts {
		if p.hid != 0 && p.end != 0 {
			e.cur.place(p.hid, p.end)
		}
	}
	if e.cur.at <= 0 {
		e.cur.at, e.cur.seen, e.cur.all = now, e.cur.seen[:0], true
	}
	e.buf = append(e.buf, "id: "...)
	e.buf = e.cur.append(e.buf)
	e.buf = append(e.buf, "\nevent: tail\ndata: {}\n\n"...)
}

func (e *encoder) end() {
	if e.f == formatSSE {
		e.buf = append(e.buf, "event: end\ndata: {}\n\n"...)
	}
}

// cursor is where a stream stands. Exact per replica: pos holds, for each replica's
// history of the app (by its random ID), the sequence number of the last line sent
// from it; a replica that finds its history there resumes right after that line,
// however old the times of the lines it received since. For a replica that is not
// there (restarted, added, or a router too old to number its lines), the fallback
// is time: at is the newest line time sent (µs since the epoch) and seen the lines
// sent at exactly that time (LineHash), so such a replica repeats none of them and
// skips none of the others at that microsecond; its lines that arrive late, with a
// time older than at, are not sent.
type cursor struct {
	at   int64
	seen []uint32
	// all: every line at at counts as sent (more than session.MaxSeen of them, or
	// a cursor of the old form without hashes).
	all bool
	pos []session.Pos
}

// LineHash identifies a line within its microsecond: FNV-1a of source, process and
// text. Two equal lines in one microsecond are one to a cursor.
func LineHash(m *message.Msg) uint32 {
	h := uint32(2166136261)
	for _, part := range [][]byte{m.Source, {0}, m.ProcID, {0}, m.Text} {
		for _, b := range part {
			h ^= uint32(b)
			h *= 16777619
		}
	}
	return h
}

// add moves the cursor past m, which is line seq of history hid (hid 0: a line
// without a position, such as the router's own L11 notice or an old peer's line).
func (c *cursor) add(m *message.Msg, hid uint32, seq uint64) {
	if m.Time >= c.at {
		c.addAt(m.Time, LineHash(m), hid, seq)
	} else if hid != 0 {
		c.place(hid, seq)
	}
}

// addAt is add of a line at time at whose LineHash is h.
func (c *cursor) addAt(at int64, h uint32, hid uint32, seq uint64) {
	if hid != 0 {
		c.place(hid, seq)
	}
	switch {
	case at > c.at:
		c.at, c.seen, c.all = at, append(c.seen[:0], h), false
	case at == c.at && !c.all:
		if slices.Contains(c.seen, h) {
			return
		}
		if len(c.seen) == session.MaxSeen {
			c.seen, c.all = c.seen[:0], true
			return
		}
		c.seen = append(c.seen, h)
	}
}

// place records that line seq of history hid was sent. Each history's lines come
// in their order, so the newest is the position. Beyond session.MaxPos histories
// the one placed longest ago is forgotten (that replica falls back to time).
func (c *cursor) place(hid uint32, seq uint64) {
	for i := range c.pos {
		if c.pos[i].History == hid {
			// The newest wins: a history's lines come in order, but the lines a
			// tail dropped are placed before the older ones it kept (sink.take).
			c.pos[i].Seq = max(c.pos[i].Seq, seq)
			return
		}
	}
	if len(c.pos) == session.MaxPos {
		c.pos = slices.Delete(c.pos, 0, 1)
	}
	c.pos = append(c.pos, session.Pos{History: hid, Seq: seq})
}

// after returns the position in history hid, if the cursor has one.
func (c *cursor) after(hid uint32) (uint64, bool) {
	for _, p := range c.pos {
		if p.History == hid {
			return p.Seq, true
		}
	}
	return 0, false
}

// clone returns a copy that shares no memory with c.
func (c cursor) clone() cursor {
	c.seen, c.pos = slices.Clone(c.seen), slices.Clone(c.pos)
	return c
}

// claims returns the cursor as session claims' Since, Seen and Pos.
func (c cursor) claims() (int64, []uint32, []session.Pos) {
	pos := slices.Clone(c.pos)
	if c.all || len(c.seen) == 0 {
		return c.at, nil, pos
	}
	return c.at, slices.Clone(c.seen), pos
}

// fromClaims is the cursor a session id starts from.
func fromClaims(cl *session.Claims) cursor {
	return cursor{at: cl.Since, seen: slices.Clone(cl.Seen), all: len(cl.Seen) == 0, pos: slices.Clone(cl.Pos)}
}

// maxCursorLen bounds an SSE id: the time, MaxSeen hashes and MaxPos positions.
const maxCursorLen = 20 + session.MaxSeen*9 + session.MaxPos*(1+8+1+16)

// append writes the cursor as an SSE id: "T", or "T-h1.h2" with the hashes in hex,
// then ",H:S" for each position (history ID and sequence number in hex). A cursor
// without positions is the form routers wrote before they numbered lines, and is
// still read.
func (c cursor) append(dst []byte) []byte {
	dst = strconv.AppendInt(dst, c.at, 10)
	if !c.all {
		for i, h := range c.seen {
			sep := byte('.')
			if i == 0 {
				sep = '-'
			}
			dst = append(dst, sep)
			dst = strconv.AppendUint(dst, uint64(h), 16)
		}
	}
	for _, p := range c.pos {
		dst = append(dst, ',')
		dst = strconv.AppendUint(dst, uint64(p.History), 16)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, p.Seq, 16)
	}
	return dst
}

// parseCursor reads an SSE id: "T" (every line at T sent) or "T-h1.h2…", each
// optionally followed by ",H:S" positions. The client holds it (Last-Event-ID, the
// cursor query parameter), so it is not trusted for anything but where to resume:
// the session's signed claims alone decide which app and lines may be read.
func parseCursor(s string) (cursor, bool) {
	if s == "" || len(s) > maxCursorLen {
		return cursor{}, false
	}
	s, positions, hasPos := strings.Cut(s, ",")
	at, hashes, found := strings.Cut(s, "-")
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil || n <= 0 || (found && hashes == "") {
		return cursor{}, false
	}
	c := cursor{at: n, all: hashes == ""}
	if hashes != "" {
		for hs := range strings.SplitSeq(hashes, ".") {
			h, err := strconv.ParseUint(hs, 16, 32)
			if err != nil || len(c.seen) == session.MaxSeen {
				return cursor{}, false
			}
			c.seen = append(c.seen, uint32(h))
		}
	}
	if hasPos {
		for p := range strings.SplitSeq(positions, ",") {
			hs, ss, ok := strings.Cut(p, ":")
			h, err1 := strconv.ParseUint(hs, 16, 32)
			q, err2 := strconv.ParseUint(ss, 16, 64)
			if !ok || err1 != nil || err2 != nil || h == 0 || len(c.pos) == session.MaxPos {
				return cursor{}, false
			}
			c.pos = append(c.pos, session.Pos{History: uint32(h), Seq: q})
		}
	}
	return c, true
}
