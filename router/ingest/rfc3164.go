package ingest

import (
	"errors"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

var errNot3164 = errors.New("not an RFC 3164 record")

// scan3164 reads the BSD syslog form (RFC 3164 section 4.1) that nginx and many
// daemons send: "<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG". The timestamp has no year
// or zone; it is taken as UTC in the year that puts it nearest to now. The result has
// the timestamp re-rendered in RFC 3339 form in ts, which the Fields point into.
func scan3164(b []byte, now time.Time) (wire.Fields, error) {
	var f wire.Fields
	if len(b) < 4 || b[0] != '<' {
		return f, errNot3164
	}
	i, pri := 1, 0
	for i < len(b) && i < 5 && b[i] >= '0' && b[i] <= '9' {
		pri = pri*10 + int(b[i]-'0')
		i++
	}
	if i == 1 || i >= len(b) || b[i] != '>' || pri > 191 {
		return f, errNot3164
	}
	f.Priority = uint8(pri)
	i++
	rest := b[i:]
	// "Mmm dd hh:mm:ss " is 16 bytes; the day is space-padded. Without a timestamp
	// there is no HOSTNAME either: everything is content (section 4.3.3).
	stamped := false
	if len(rest) >= 16 && rest[15] == ' ' && rest[3] == ' ' && rest[9] == ':' && rest[12] == ':' {
		if t, ok := parse3164Time(rest[:15], now); ok {
			us := t.UnixMicro()
			f.Timestamp = message.AppendRFC3339Micro(nil, us)
			rest = rest[16:]
			stamped = true
		}
	}
	// HOST, then TAG up to '[' or ':'.
	sp := indexByte(rest, ' ')
	if stamped && sp > 0 && (rest[sp-1] != ':') {
		f.Hostname = rest[:sp]
		rest = rest[sp+1:]
	}
	f.AppName, f.ProcID, rest = scanTag(rest)
	for _, c := range f.Hostname {
		if c < 33 || c > 126 {
			f.Hostname = nil
			break
		}
	}
	f.Text = rest
	return f, nil
}

// scanTag splits "TAG[PID]: MSG" (RFC 3164 section 4.1.3: the TAG is at most 32
// alphanumerics, read generously here) into the tag, the PID and the content. Without
// a tag ended by '[' or ':' all of b is content.
func scanTag(b []byte) (tag, pid, rest []byte) {
	j := 0
	for j < len(b) && j < 48 && b[j] != '[' && b[j] != ':' && b[j] != ' ' {
		j++
	}
	if j == 0 || j >= len(b) || (b[j] != '[' && b[j] != ':') {
		return nil, nil, b
	}
	tag, rest = b[:j], b[j:]
	if rest[0] == '[' {
		if k := indexByte(rest, ']'); k > 0 {
			pid = rest[1:k]
			rest = rest[k+1:]
		}
	}
	if len(rest) > 0 && rest[0] == ':' {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return tag, pid, rest
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func parse3164Time(b []byte, now time.Time) (time.Time, bool) {
	mon := 0
	for k, m := range months {
		if string(b[:3]) == m {
			mon = k + 1
		}
	}
	day := 0
	for _, c := range b[4:6] {
		switch {
		case c == ' ':
		case c >= '0' && c <= '9':
			day = day*10 + int(c-'0')
		default:
			return time.Time{}, false
		}
	}
	hh, ok1 := two(b[7:9])
	mm, ok2 := two(b[10:12])
	ss, ok3 := two(b[13:15])
	if mon == 0 || day < 1 || day > 31 || !ok1 || !ok2 || !ok3 || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, false
	}
	now = now.UTC()
	t := time.Date(now.Year(), time.Month(mon), day, hh, mm, ss, 0, time.UTC)
	// A December line read in January belongs to last year, and the reverse.
	if t.Sub(now) > 180*24*time.Hour {
		t = t.AddDate(-1, 0, 0)
	} else if now.Sub(t) > 180*24*time.Hour {
		t = t.AddDate(1, 0, 0)
	}
	return t, true
}

func two(b []byte) (int, bool) {
	if b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}
