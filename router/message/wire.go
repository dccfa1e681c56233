package message

import (
	"encoding/binary"
	"strconv"
	"time"
)

// AppendWire appends m as a drain record: a 2-byte offset, then the RFC 5424 record
// with HOSTNAME left out; each drain inserts its own token there (Logplex puts the
// drain token in HOSTNAME). A message is encoded once when it is published and only
// copied per drain, which is what keeps fan-out to many drains cheap.
func AppendWire(dst []byte, m *Msg) []byte {
	start := len(dst)
	dst = append(dst, 0, 0)
	rec := len(dst)
	dst = AppendRFC5424(dst, m, "-")
	// "<PRI>1 TIMESTAMP -": the host is the field after the second space; the
	// encoder never writes spaces inside PRI, VERSION or TIMESTAMP.
	k, spaces := rec, 0
	for ; k < len(dst) && spaces < 2; k++ {
		if dst[k] == ' ' {
			spaces++
		}
	}
	// Cut the "-" placeholder out.
	copy(dst[k:], dst[k+1:])
	dst = dst[:len(dst)-1]
	binary.LittleEndian.PutUint16(dst[start:], uint16(k-rec))
	return dst
}

// WireHostSize returns the record size of a wire record once a host is inserted.
func WireHostSize(wrec []byte, host string) int {
	return len(wrec) - 2 + len(host)
}

// AppendFrameHost appends a wire record as an octet-counted frame (RFC 6587) with
// host in HOSTNAME. host must be a valid HOSTNAME (see Host).
func AppendFrameHost(dst, wrec []byte, host string) []byte {
	if len(wrec) < 2 {
		return dst
	}
	k := int(binary.LittleEndian.Uint16(wrec))
	rec := wrec[2:]
	if k > len(rec) {
		return dst
	}
	dst = strconv.AppendInt(dst, int64(len(rec)+len(host)), 10)
	dst = append(dst, ' ')
	dst = append(dst, rec[:k]...)
	dst = append(dst, host...)
	return append(dst, rec[k:]...)
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
