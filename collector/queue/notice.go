package queue

import (
	"bytes"
	"strconv"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Sources of the collector's records (docs/architecture.md, "Message text and sources").
const (
	SourceApp      = "app"
	SourcePlatform = "kubeplex"
)

// Loss notice prefixes, Logplex's error codes for the collector side: L12 is a local
// buffer overflow, L13 a local delivery error.
var (
	prefixL12 = []byte("Error L12: ")
	prefixL13 = []byte("Error L13: ")
)

// AppendNotice appends the text of an L12 (dropped=true) or L13 notice:
// "Error L12: N messages dropped since TIME".
func AppendNotice(dst []byte, dropped bool, n int, since time.Time) []byte {
	word := " messages lost since "
	if dropped {
		dst = append(dst, prefixL12...)
		word = " messages dropped since "
	} else {
		dst = append(dst, prefixL13...)
	}
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, word...)
	return wire.AppendTimestamp(dst, since)
}

// ParseNotice recognises the text of an L12 or L13 notice and returns its count and
// time. The sidecar uses it on lines from wrappers so that their counts survive.
func ParseNotice(text []byte) (n int, since time.Time, ok bool) {
	var rest []byte
	var word string
	switch {
	case bytes.HasPrefix(text, prefixL12):
		rest, word = text[len(prefixL12):], " messages dropped since "
	case bytes.HasPrefix(text, prefixL13):
		rest, word = text[len(prefixL13):], " messages lost since "
	default:
		return 0, time.Time{}, false
	}
	i := bytes.IndexByte(rest, ' ')
	if i <= 0 {
		return 0, time.Time{}, false
	}
	n, err := strconv.Atoi(string(rest[:i]))
	if err != nil || n <= 0 || !bytes.HasPrefix(rest[i:], []byte(word)) {
		return 0, time.Time{}, false
	}
	since, err = time.Parse(wire.TimeLayout, string(rest[i+len(word):]))
	if err != nil {
		return 0, time.Time{}, false
	}
	return n, since, true
}

// Producer stamps lines as RFC 5424 records of one process and pushes them.
type Producer struct {
	Queue    *Queue
	Hostname string
	Proc     string
}

// Record encodes one record of this producer.
func (p *Producer) Record(source string, pri uint8, t time.Time, text []byte) []byte {
	m := wire.Message{Priority: pri, Time: t, Hostname: p.Hostname, AppName: source, ProcID: p.Proc, Text: text}
	return wire.AppendRFC5424(make([]byte, 0, 64+len(p.Hostname)+len(p.Proc)+len(text)), &m)
}

// MsgIDStateError marks the warning that a process's state (its restart count)
// could not be kept; the router counts such records per app
// (kubeplex_collector_state_errors_total).
const MsgIDStateError = "state-error"

// Warning pushes a process event with an RFC 5424 MSGID a machine can count.
func (p *Producer) Warning(msgID, text string) {
	m := wire.Message{Priority: wire.PriorityWarning, Time: time.Now(), Hostname: p.Hostname,
		AppName: SourcePlatform, ProcID: p.Proc, MsgID: msgID, Text: []byte(text)}
	p.Queue.Push(Entry{Record: wire.AppendRFC5424(nil, &m)})
}

// Line pushes a worker's line (source app) without ever blocking.
func (p *Producer) Line(pri uint8, t time.Time, text []byte) {
	p.Queue.Push(Entry{Record: p.Record(SourceApp, pri, t, text)})
}

// LineSD is Line for a record with STRUCTURED-DATA (an OTLP record's attributes),
// which must be valid SD.
func (p *Producer) LineSD(pri uint8, t time.Time, sd, text []byte) {
	if len(sd) == 0 {
		p.Line(pri, t, text)
		return
	}
	m := wire.Message{Priority: pri, Time: t, Hostname: p.Hostname, AppName: SourceApp, ProcID: p.Proc, StructuredData: sd, Text: text}
	rec := wire.AppendRFC5424(make([]byte, 0, 64+len(p.Hostname)+len(p.Proc)+len(sd)+len(text)), &m)
	p.Queue.Push(Entry{Record: rec})
}

// Event pushes a platform line (source kubeplex) about this process.
func (p *Producer) Event(pri uint8, text string) {
	p.Queue.Push(Entry{Record: p.Record(SourcePlatform, pri, time.Now(), []byte(text))})
}
