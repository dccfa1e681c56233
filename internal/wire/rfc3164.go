package wire

import (
	"errors"
	"time"
)

// BSDMessage is a message in the BSD syslog format of RFC 3164, which local senders
// (glibc's syslog(3), Python's SysLogHandler) and many daemons (nginx) still send.
type BSDMessage struct {
	Priority uint8
	// Time is the TIMESTAMP read in loc, in the year that puts it closest to now
	// (RFC 3164 carries neither year nor zone); zero when the header had none.
	Time     time.Time
	Hostname []byte
	// Tag is the program name before "[pid]:" or ":"; PID is inside the brackets.
	Tag, PID []byte
	// Content is the text after the tag (or all of MSG when there is no tag).
	Content []byte
}

var errNoPRI = errors.New("parse rfc3164: no PRI")

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// ParseRFC3164 reads a BSD syslog message, leniently as RFC 3164 section 4.3 asks of
// a receiver: PRI is required; the TIMESTAMP and HOSTNAME of the HEADER are taken
// when well formed; a TAG ends at "[", ":" or a space and is taken only when followed
// by ":" (local senders such as glibc's syslog(3) send "<PRI>TIMESTAMP TAG[PID]: MSG"
// with no hostname). The slices are views into b; the TIMESTAMP is read in loc
// (nil: time.Local).
func ParseRFC3164(b []byte, now time.Time, loc *time.Location) (BSDMessage, error) {
	var m BSDMessage
	pri, i, ok := parsePRI(b)
	if !ok {
		return m, errNoPRI
	}
	m.Priority = pri
	rest := b[i:]
	if t, ok := parseStamp(rest, now, loc); ok {
		m.Time = t
		rest = rest[15:]
		if len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		// HOSTNAME is a printable word followed by a space (section 4.1.2), unless
		// that word is already the tag.
		if w := wordEnd(rest); w > 0 && w < len(rest) && rest[w] == ' ' && !isTagEnd(rest[w-1]) && printable(rest[:w]) {
			m.Hostname = rest[:w]
			rest = rest[w+1:]
		}
	}
	m.Tag, m.PID, m.Content = splitTag(rest)
	return m, nil
}

// parsePRI reads "<N>" with 0 ≤ N ≤ 191 and at most three digits (RFC 3164 4.1.1).
func parsePRI(b []byte) (uint8, int, bool) {
	if len(b) < 3 || b[0] != '<' {
		return 0, 0, false
	}
	n, i := 0, 1
	for ; i < len(b) && i <= 4 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int(b[i]-'0')
	}
	if i == 1 || i > 4 || i >= len(b) || b[i] != '>' || n > 191 || (b[1] == '0' && i > 2) {
		return 0, 0, false
	}
	return uint8(n), i + 1, true
}

// parseStamp reads "Mmm dd hh:mm:ss" (day space-padded, RFC 3164 4.1.2).
func parseStamp(b []byte, now time.Time, loc *time.Location) (time.Time, bool) {
	if len(b) < 15 || b[3] != ' ' || b[6] != ' ' || b[9] != ':' || b[12] != ':' {
		return time.Time{}, false
	}
	month := -1
	for i, m := range months {
		if string(b[:3]) == m {
			month = i + 1
			break
		}
	}
	day, ok1 := num2(b[4], b[5], true)
	hh, ok2 := num2(b[7], b[8], false)
	mm, ok3 := num2(b[10], b[11], false)
	ss, ok4 := num2(b[13], b[14], false)
	if month < 0 || !ok1 || !ok2 || !ok3 || !ok4 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	if loc == nil {
		loc = time.Local
	}
	now = now.In(loc)
	t := time.Date(now.Year(), time.Month(month), day, hh, mm, ss, 0, loc)
	// A December stamp read in early January belongs to last year, and vice versa.
	switch {
	case t.Sub(now) > 180*24*time.Hour:
		t = t.AddDate(-1, 0, 0)
	case now.Sub(t) > 180*24*time.Hour:
		t = t.AddDate(1, 0, 0)
	}
	return t, true
}

func num2(a, b byte, spacePad bool) (int, bool) {
	if a == ' ' && spacePad {
		a = '0'
	}
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

func wordEnd(b []byte) int {
	for i, c := range b {
		if c == ' ' {
			return i
		}
	}
	return len(b)
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < '!' || c > '~' {
			return false
		}
	}
	return true
}

func isTagEnd(c byte) bool { return c == ':' || c == ']' }

// splitTag splits "TAG[PID]: CONTENT" or "TAG: CONTENT"; anything else is all content.
func splitTag(b []byte) (tag, pid, content []byte) {
	for i := 0; i < len(b) && i <= 48; i++ {
		switch c := b[i]; {
		case c == ':':
			if i == 0 {
				return nil, nil, b
			}
			return b[:i], nil, trimSpace1(b[i+1:])
		case c == '[':
			j := i + 1
			for j < len(b) && b[j] != ']' && j-i <= 129 {
				j++
			}
			if i == 0 || j+1 >= len(b) || b[j] != ']' || b[j+1] != ':' {
				return nil, nil, b
			}
			return b[:i], b[i+1 : j], trimSpace1(b[j+2:])
		case c <= ' ' || c > '~':
			return nil, nil, b
		}
	}
	return nil, nil, b
}

func trimSpace1(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}
