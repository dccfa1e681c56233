package wire

import (
	"encoding/binary"
	"errors"
)

// Fields are views into one RFC 5424 record, as Scan found them. Header fields hold
// the raw bytes, with "-" (the nil value) turned into an empty slice.
type Fields struct {
	Priority  uint8
	Timestamp []byte
	Hostname  []byte
	AppName   []byte
	ProcID    []byte
	MsgID     []byte
	// StructuredData is the raw SD element list ("" when nil).
	StructuredData []byte
	Text           []byte
}

// ErrMalformedRecord is wrapped by every error Scan returns.
var ErrMalformedRecord = errors.New("malformed rfc5424 record")

// Scan splits an RFC 5424 record into its fields without copying or allocating.
// It checks the grammar of RFC 5424 section 6 (PRI range, version, field lengths and
// character set, SD brackets and escapes) but not the calendar value of the timestamp
// beyond its shape; the router only re-emits timestamps, never computes with them.
func Scan(b []byte) (Fields, error) {
	var f Fields
	pri, i, err := scanPriVersion(b)
	if err != nil {
		return f, err
	}
	f.Priority = pri
	if f.Timestamp, i, err = headerField(b, i, 64); err != nil {
		return f, err
	}
	if len(f.Timestamp) > 0 && !timestampShape(f.Timestamp) {
		return f, malformed("bad TIMESTAMP")
	}
	if f.Hostname, i, err = headerField(b, i, maxHostname); err != nil {
		return f, err
	}
	if f.AppName, i, err = headerField(b, i, maxAppName); err != nil {
		return f, err
	}
	if f.ProcID, i, err = headerField(b, i, maxProcID); err != nil {
		return f, err
	}
	if f.MsgID, i, err = headerField(b, i, maxMsgID); err != nil {
		return f, err
	}
	// STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT
	if i >= len(b) {
		return f, malformed("missing STRUCTURED-DATA")
	}
	if b[i] == '-' {
		i++
	} else {
		sdStart := i
		if i, err = scanSD(b, i); err != nil {
			return f, err
		}
		f.StructuredData = b[sdStart:i]
	}
	switch {
	case i == len(b):
	case b[i] == ' ':
		f.Text = b[i+1:]
	default:
		return f, malformed("junk after STRUCTURED-DATA")
	}
	return f, nil
}

// scanPriVersion reads PRI and VERSION and the space after them, and returns the
// priority and the index of the TIMESTAMP.
func scanPriVersion(b []byte) (uint8, int, error) {
	// PRI = "<" 1*3DIGIT ">", value 0..191, no leading zeros except "<0>".
	if len(b) < 3 || b[0] != '<' {
		return 0, 0, malformed("missing <PRI>")
	}
	i := 1
	pri := 0
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 3 {
		pri = pri*10 + int(b[i]-'0')
		i++
	}
	if i == start || i >= len(b) || b[i] != '>' || pri > 191 || (b[start] == '0' && i-start > 1) {
		return 0, 0, malformed("bad PRI")
	}
	i++
	// VERSION = NONZERO-DIGIT 0*2DIGIT. Only 1 exists, but the grammar allows more and
	// go-syslog accepts them, so Scan does too.
	if i >= len(b) || b[i] < '1' || b[i] > '9' {
		return 0, 0, malformed("bad VERSION")
	}
	for v := i; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		if i-v >= 3 {
			return 0, 0, malformed("bad VERSION")
		}
	}
	if i >= len(b) || b[i] != ' ' {
		return 0, 0, malformed("bad VERSION")
	}
	return uint8(pri), i + 1, nil
}

// headerField reads a space-terminated field of printable US-ASCII at b[i:].
func headerField(b []byte, i, limit int) ([]byte, int, error) {
	start := i
	// Eight bytes at a time while none of them is a space or outside '!'..'~':
	// header fields are mostly long (timestamp, host, token) and this runs for every
	// record. (x - 0x21…) sets a byte's top bit when it is below '!', (x + 0x01…)
	// when it is 0x7f or above, x itself when it is 0x80 or above; a borrow or carry
	// across bytes only comes from a byte that already matched, so a clean word is
	// all printable. A word that matches goes to the byte loop, which finds the end.
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		if ((x-0x2121212121212121)|(x+0x0101010101010101)|x)&0x8080808080808080 != 0 {
			break
		}
		i += 8
	}
	for i < len(b) && b[i] != ' ' {
		if b[i] < 33 || b[i] > 126 {
			return nil, i, malformed("non-printable header byte")
		}
		i++
	}
	if i >= len(b) {
		return nil, i, malformed("truncated header")
	}
	n := i - start
	if n == 0 {
		return nil, i, malformed("empty header field")
	}
	if n > limit {
		return nil, i, malformed("header field too long")
	}
	field := b[start:i]
	if n == 1 && field[0] == '-' {
		field = nil
	}
	return field, i + 1, nil
}

// timestampShape accepts FULL-DATE "T" FULL-TIME with optional fraction (1-6 digits)
// and "Z" or a numeric offset (RFC 5424 section 6.2.3).
func timestampShape(t []byte) bool {
	const shape = "dddd-dd-ddTdd:dd:dd"
	if len(t) < len(shape)+1 {
		return false
	}
	for k := 0; k < len(shape); k++ {
		if shape[k] == 'd' {
			if t[k] < '0' || t[k] > '9' {
				return false
			}
		} else if t[k] != shape[k] {
			return false
		}
	}
	rest := t[len(shape):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 1 || n > 7 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		return isDigits(rest[1:3]) && isDigits(rest[4:6])
	}
	return false
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// scanSD walks one or more SD-ELEMENTs: "[" SD-ID *(SP PARAM-NAME "=" %d34 PARAM-VALUE
// %d34) "]", where PARAM-VALUE escapes '"', '\' and ']' with a backslash.
func scanSD(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '[' {
		return i, malformed("bad STRUCTURED-DATA")
	}
	for i < len(b) && b[i] == '[' {
		i++
		if i = sdName(b, i); i < 0 {
			return 0, malformed("bad SD-ID")
		}
		for i < len(b) && b[i] == ' ' {
			i++
			if i = sdName(b, i); i < 0 || i+1 >= len(b) || b[i] != '=' || b[i+1] != '"' {
				return 0, malformed("bad SD-PARAM")
			}
			i += 2
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' && i+1 < len(b) {
					i++
				}
				i++
			}
			if i >= len(b) {
				return 0, malformed("unterminated PARAM-VALUE")
			}
			i++
		}
		if i >= len(b) || b[i] != ']' {
			return 0, malformed("unterminated SD-ELEMENT")
		}
		i++
	}
	return i, nil
}

// sdName reads an SD-NAME (1*32 printable except '=', ' ', ']', '"'); -1 on error.
func sdName(b []byte, i int) int {
	start := i
	for i < len(b) {
		c := b[i]
		if c < 33 || c > 126 || c == '=' || c == ' ' || c == ']' || c == '"' {
			break
		}
		i++
	}
	if i == start || i-start > 32 {
		return -1
	}
	return i
}

func malformed(why string) error {
	return &recordError{why: why}
}

type recordError struct{ why string }

func (e *recordError) Error() string { return "malformed rfc5424 record: " + e.why }
func (e *recordError) Unwrap() error { return ErrMalformedRecord }
