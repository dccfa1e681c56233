package message

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// AppendWire appends m as a drain record: a 2-byte offset, then the RFC 5424 record
// with HOSTNAME left out; each drain inserts its own token there (Logplex puts the
// drain token in HOSTNAME). A message is encoded once when it is published and only
// copied per drain, which is what keeps fan-out to many drains cheap.
func AppendWire(dst []byte, m *Msg) []byte { return AppendWireOrigin(dst, m, nil) }

// wireOrigin marks, in a drain record's offset, that an origin (AppendOrigin)
// follows it: a length byte and the origin, before the record. Offsets stay far
// below it (the host follows PRI, VERSION and TIMESTAMP).
const wireOrigin = 0x8000

// AppendWireOrigin is AppendWire for a message whose origin (AppendOrigin: the pod
// and node of the collector that sent it) is known. The origin rides in the drain
// record beside the RFC 5424 record, not in it: drains that use it (OTLP) read it
// with WireOrigin, the others' frames are the same bytes as without it.
func AppendWireOrigin(dst []byte, m *Msg, origin []byte) []byte {
	var e WireEncoder
	return e.Append(dst, m, origin)
}

// WireEncoder is AppendWireOrigin for a batch of messages: it keeps the formatted
// date and clock of the last second it wrote (wire.TimestampCache). The zero value
// is ready; it is not safe for concurrent use.
type WireEncoder struct {
	ts wire.TimestampCache
}

// Append appends m as a drain record (AppendWireOrigin). It writes the record as
// AppendRFC5424 would with an empty HOSTNAME slot, byte for byte (tested), straight
// from m's fields: no placeholder to cut out, no time.Time.
func (e *WireEncoder) Append(dst []byte, m *Msg, origin []byte) []byte {
	dst, start, flag := appendWireHead(dst, origin)
	rec := len(dst)
	pri := m.Priority
	if pri > 191 {
		pri = wire.PriorityInfo
	}
	dst = append(dst, '<')
	dst = strconv.AppendUint(dst, uint64(pri), 10)
	dst = append(dst, '>', '1', ' ')
	dst = e.ts.Append(dst, m.Time)
	dst = append(dst, ' ')
	binary.LittleEndian.PutUint16(dst[start:], uint16(len(dst)-rec|flag))
	dst = append(dst, ' ')
	dst = wire.AppendHeaderField(dst, stringOf(m.Source), maxSource)
	dst = append(dst, ' ')
	dst = wire.AppendHeaderField(dst, stringOf(m.ProcID), maxProc)
	dst = append(dst, ' ', '-', ' ')
	if len(m.Attrs) == 0 {
		dst = append(dst, '-')
	} else {
		dst = append(dst, m.Attrs...)
	}
	if len(m.Text) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, m.Text...)
	}
	return dst
}

// wireParts splits a drain record into the host offset, the origin (nil when
// none) and the RFC 5424 record; ok is false for bytes AppendWire did not write.
func wireParts(wrec []byte) (k int, origin, rec []byte, ok bool) {
	if len(wrec) < 2 {
		return 0, nil, nil, false
	}
	h := int(binary.LittleEndian.Uint16(wrec))
	rec = wrec[2:]
	if h&wireOrigin != 0 {
		if len(rec) < 1 || int(rec[0])+1 > len(rec) {
			return 0, nil, nil, false
		}
		n := int(rec[0])
		origin, rec = rec[1:1+n], rec[1+n:]
	}
	k = h &^ wireOrigin
	if k > len(rec) {
		return 0, nil, nil, false
	}
	return k, origin, rec, true
}

// appendWireHead appends a drain record's length slot (filled in by the caller at
// start) and origin, and returns the flag the slot must carry for it.
func appendWireHead(dst, origin []byte) (out []byte, start, flag int) {
	start = len(dst)
	dst = append(dst, 0, 0)
	if n := len(origin); n > 0 && n <= MaxOrigin {
		dst = append(dst, byte(n))
		dst = append(dst, origin...)
		flag = wireOrigin
	}
	return dst, start, flag
}

// AppendWireParts appends a drain record (AppendWireOrigin) made from an RFC 5424
// record given as the bytes before its HOSTNAME (head) and those after it (tail,
// from the space that follows), with origin (nil: none): a frame a syslog drain
// would write, turned back into the record it was built from. It reports false,
// appending nothing, when head is too long to be a record's.
func AppendWireParts(dst, head, tail, origin []byte) ([]byte, bool) {
	if len(head) >= wireOrigin {
		return dst, false
	}
	dst, start, flag := appendWireHead(dst, origin)
	binary.LittleEndian.PutUint16(dst[start:], uint16(len(head)|flag))
	dst = append(dst, head...)
	return append(dst, tail...), true
}

// WireHostSize returns the record size of a wire record once a host is inserted.
func WireHostSize(wrec []byte, host string) int {
	_, _, rec, _ := wireParts(wrec)
	return len(rec) + len(host)
}

// WireOrigin returns a drain record's origin (AppendOrigin's encoding), or nil.
func WireOrigin(wrec []byte) []byte {
	_, origin, _, _ := wireParts(wrec)
	return origin
}

// AppendFrameHost appends a wire record as an octet-counted frame (RFC 6587) with
// host in HOSTNAME. host must be a valid HOSTNAME (see Host).
func AppendFrameHost(dst, wrec []byte, host string) []byte {
	k, _, rec, ok := wireParts(wrec)
	if !ok {
		return dst
	}
	dst = strconv.AppendInt(dst, int64(len(rec)+len(host)), 10)
	dst = append(dst, ' ')
	dst = append(dst, rec[:k]...)
	dst = append(dst, host...)
	return append(dst, rec[k:]...)
}

// MaxOrigin bounds an origin: two Kubernetes names (at most 253 bytes each) do not
// always fit, so AppendOrigin leaves out what would not.
const MaxOrigin = 255

// AppendOrigin appends where a message came from in the form drain records carry:
// a length byte and the pod name, then a length byte and the node name (either may
// be empty). A name that would take the whole past MaxOrigin is left out; the pod
// name leaves room for the node's length byte, so a 253-byte pod name fits and the
// whole never passes MaxOrigin (an origin that did would be dropped by
// AppendWireOrigin, node name and all).
func AppendOrigin(dst []byte, pod, node string) []byte {
	start := len(dst)
	for i, s := range []string{pod, node} {
		if len(dst)-start+1+len(s)+(1-i) > MaxOrigin {
			s = ""
		}
		dst = append(dst, byte(len(s)))
		dst = append(dst, s...)
	}
	if len(dst)-start == 2 { // neither name: no origin
		return dst[:start]
	}
	return dst
}

// OriginNames returns the pod and node names of an origin (AppendOrigin), empty
// where unknown or when origin does not decode.
func OriginNames(origin []byte) (pod, node []byte) {
	if len(origin) < 1 || int(origin[0])+1 > len(origin) {
		return nil, nil
	}
	pod, rest := origin[1:1+int(origin[0])], origin[1+int(origin[0]):]
	if len(rest) < 1 || int(rest[0])+1 > len(rest) {
		return pod, nil
	}
	return pod, rest[1 : 1+int(rest[0])]
}

// Host makes s a valid RFC 5424 HOSTNAME: printable US-ASCII, 1 to 255 bytes.
func Host(s string) string {
	if s == "" {
		return "-"
	}
	if len(s) > 255 {
		s = s[:255]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}

// AppendWireStrings is AppendWire for lines given as strings.
func AppendWireStrings(dst []byte, pri uint8, t time.Time, source, proc, text string) []byte {
	m := Msg{Priority: pri, Time: t.UnixMicro(), Source: bytesOf(source), ProcID: bytesOf(proc), Text: bytesOf(text)}
	return AppendWire(dst, &m)
}
