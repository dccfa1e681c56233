// Package message is the router's in-memory form of a log line: a compact byte
// encoding that history rings and drain queues store without a heap object per
// message, and the encoders that turn it back into RFC 5424 records and user text.
package message

import (
	"encoding/binary"
	"errors"
	"iter"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// MaxLine is the longest message text Logplex keeps in one message; longer lines are
// split into several messages.
const MaxLine = 10000

// Platform source and the router's process name for the lines the router writes
// itself (L10 notices, routing-table changes).
const (
	SourcePlatform = "kubeplex"
	ProcRouter     = "router"
)

// Longest header fields (RFC 5424 section 6) and the longest encoded message.
const (
	maxSource = 48
	maxProc   = 128
	headerLen = 1 + 8 + 1 + 1 // priority, time, two length bytes
	// MaxAttrs bounds a message's attributes (its STRUCTURED-DATA); longer lists are
	// clipped at an element boundary.
	MaxAttrs = 4096
	// MaxEncoded bounds Append's output for text of at most MaxLine bytes.
	MaxEncoded = headerLen + maxSource + maxProc + 2 + MaxAttrs + MaxLine
	// hasAttrs marks, in the source length byte, that an attributes section follows
	// the process: source lengths stop at 48, so the bit is free, and a message
	// without attributes costs no byte for them.
	hasAttrs = 0x80
)

// Msg is a view of one message. Time is microseconds since the Unix epoch, UTC.
type Msg struct {
	Priority uint8
	Time     int64
	Source   []byte
	ProcID   []byte
	// Attrs are the message's attributes as an RFC 5424 STRUCTURED-DATA element list
	// ("[id k=\"v\"]..."), exactly as it travels on syslog wire; empty for most
	// messages. It must be valid SD (wire.Scan's StructuredData, or built with
	// wire.AppendSDParam). Attributes walks it; wire.SDIDOtel and its siblings name the
	// elements kubeplex writes for OpenTelemetry records.
	Attrs []byte
	Text  []byte
}

// Append encodes m compactly: priority, time (8 bytes), source and process with a
// length byte each, the attributes (when there are any) with a 2-byte length, then
// the text up to the end of the record. Fields longer than RFC 5424 allows are
// clipped, attributes at MaxAttrs. The length of the record is kept by its container.
func Append(dst []byte, m *Msg) []byte {
	src, proc := clip(m.Source, maxSource), clip(m.ProcID, maxProc)
	dst = append(dst, m.Priority)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Time))
	if len(m.Attrs) != 0 {
		return appendWithAttrs(dst, m, src, proc)
	}
	dst = append(dst, byte(len(src)))
	dst = append(dst, src...)
	dst = append(dst, byte(len(proc)))
	dst = append(dst, proc...)
	return append(dst, m.Text...)
}

func appendWithAttrs(dst []byte, m *Msg, src, proc []byte) []byte {
	attrs := wire.ClipSD(m.Attrs, MaxAttrs)
	dst = append(dst, byte(len(src))|hasAttrs)
	dst = append(dst, src...)
	dst = append(dst, byte(len(proc)))
	dst = append(dst, proc...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(attrs)))
	dst = append(dst, attrs...)
	return append(dst, m.Text...)
}

// Attr is one attribute of a message: its SD-ID (wire.SDIDLog for an OpenTelemetry
// record attribute, wire.SDIDResource for a resource attribute, wire.SDIDOtel for
// the record's trace_id, span_id, severity_text, ...), name and unescaped value.
// The slices are only valid during the iteration step that yields them.
type Attr struct {
	ID, Name, Value []byte
}

// Attributes yields m's attributes in order. It allocates only for a value with
// escapes in it, into one buffer reused for the whole walk.
func (m *Msg) Attributes() iter.Seq[Attr] {
	return func(yield func(Attr) bool) {
		var scratch []byte
		for p := range wire.SDParams(m.Attrs) {
			v := p.Value
			for _, c := range v {
				if c == '\\' {
					scratch = wire.UnescapeSDValue(scratch[:0], p.Value)
					v = scratch
					break
				}
			}
			if !yield(Attr{ID: p.ID, Name: p.Name, Value: v}) {
				return
			}
		}
	}
}

// AppendStrings is Append for the router's own lines.
func AppendStrings(dst []byte, pri uint8, t time.Time, source, proc, text string) []byte {
	m := Msg{Priority: pri, Time: t.UnixMicro(), Source: bytesOf(source), ProcID: bytesOf(proc), Text: bytesOf(text)}
	return Append(dst, &m)
}

// ErrCorrupt means a stored record does not decode; it indicates a bug.
var ErrCorrupt = errors.New("corrupt message record")

// Decode returns views into b, which must be one record written by Append.
func Decode(b []byte) (Msg, error) {
	var m Msg
	if len(b) < headerLen {
		return m, ErrCorrupt
	}
	m.Priority = b[0]
	m.Time = int64(binary.LittleEndian.Uint64(b[1:9]))
	i := 9
	flags := b[i] & hasAttrs
	n := int(b[i] &^ hasAttrs)
	i++
	if i+n+1 > len(b) {
		return m, ErrCorrupt
	}
	m.Source = b[i : i+n]
	i += n
	n = int(b[i])
	i++
	if i+n > len(b) {
		return m, ErrCorrupt
	}
	m.ProcID = b[i : i+n]
	i += n
	if flags != 0 {
		if i+2 > len(b) {
			return m, ErrCorrupt
		}
		n = int(binary.LittleEndian.Uint16(b[i:]))
		i += 2
		if i+n > len(b) {
			return m, ErrCorrupt
		}
		m.Attrs = b[i : i+n]
		i += n
	}
	m.Text = b[i:]
	return m, nil
}

// AppendRFC5424 appends m as an RFC 5424 record with host in HOSTNAME (drains put
// their d.<token> there, as Logplex does) and without framing.
func AppendRFC5424(dst []byte, m *Msg, host string) []byte {
	wm := wire.Message{
		Priority: m.Priority,
		Time:     time.UnixMicro(m.Time).UTC(),
		Hostname: host,
		AppName:  stringOf(m.Source),
		ProcID:   stringOf(m.ProcID),
		// Attributes reach syslog and logplex-1 receivers as the SD they came as.
		StructuredData: m.Attrs,
		Text:           m.Text,
	}
	return wire.AppendRFC5424(dst, &wm)
}

// AppendFrame appends m as an octet-counted RFC 5424 frame (RFC 6587 section 3.4.1).
// scratch is reused for the record and returned for the next call.
func AppendFrame(dst, scratch []byte, m *Msg, host string) (out, scratchOut []byte) {
	scratch = AppendRFC5424(scratch[:0], m, host)
	return wire.AppendFrame(dst, scratch), scratch
}

// AppendText appends the line as users see it:
// "2026-11-25T10:00:00.123456+00:00 app[web.1]: message".
func AppendText(dst []byte, m *Msg) []byte {
	dst = wire.AppendTimestampMicro(dst, m.Time)
	dst = append(dst, ' ')
	dst = append(dst, m.Source...)
	dst = append(dst, '[')
	dst = append(dst, m.ProcID...)
	dst = append(dst, ']', ':', ' ')
	return append(dst, m.Text...)
}

// SplitText calls fn with consecutive pieces of text of at most max bytes, cutting
// before a UTF-8 sequence rather than inside one, as Logplex splits long lines.
// Empty text yields one empty piece.
func SplitText(text []byte, max int, fn func(piece []byte)) {
	if max <= 0 {
		max = MaxLine
	}
	for len(text) > max {
		cut := max
		// Back up to a rune start, at most 3 bytes (the longest continuation run).
		for k := 0; k < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(text[cut]); k++ {
			cut--
		}
		if cut == 0 {
			cut = max
		}
		fn(text[:cut])
		text = text[cut:]
	}
	fn(text)
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// stringOf views b as a string without copying; the encoders only read it while b
// is alive and unchanged.
func stringOf(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
