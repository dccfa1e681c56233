// Package message is the router's in-memory form of a log line: a compact byte
// encoding that history rings and drain queues store without a heap object per
// message, and the encoders that turn it back into RFC 5424 records and user text.
package message

import (
	"encoding/binary"
	"errors"
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
	// MaxEncoded bounds Append's output for text of at most MaxLine bytes.
	MaxEncoded = headerLen + maxSource + maxProc + MaxLine
)

// Msg is a view of one message. Time is microseconds since the Unix epoch, UTC.
type Msg struct {
	Priority uint8
	Time     int64
	Source   []byte
	ProcID   []byte
	Text     []byte
}

// Append encodes m compactly: priority, time (8 bytes), source and process with a
// length byte each, then the text up to the end of the record. Fields longer than
// RFC 5424 allows are clipped. The length of the record is kept by its container.
func Append(dst []byte, m *Msg) []byte {
	src, proc := clip(m.Source, maxSource), clip(m.ProcID, maxProc)
	dst = append(dst, m.Priority)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(m.Time))
	dst = append(dst, byte(len(src)))
	dst = append(dst, src...)
	dst = append(dst, byte(len(proc)))
	dst = append(dst, proc...)
	return append(dst, m.Text...)
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
	n := int(b[i])
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
	m.Text = b[i+n:]
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
		Text:     m.Text,
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
