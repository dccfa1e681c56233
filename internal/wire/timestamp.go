package wire

import (
	"errors"
	"time"
)

// TIMESTAMP of RFC 5424 section 6.2.3, read and written once for every binary.

// AppendTimestamp appends t in TimeLayout. It is hand-rolled because it runs once per
// delivered message and time.AppendFormat costs several times more.
func AppendTimestamp(dst []byte, t time.Time) []byte {
	_, off := t.Zone()
	local := t.UnixMicro() + int64(off)*1e6
	// A year outside 0000-9999 has no RFC 5424 form (strict receivers refuse the
	// whole frame): write the nearest time that has one, in UTC. ParseTimestamp never
	// returns such a time; this guards every other source.
	if local < minMicros || local > maxMicros {
		local, off = max(minMicros, min(t.UnixMicro(), maxMicros)), 0
	}
	return appendMicros(dst, local, off)
}

// AppendTimestampMicro appends microseconds since the epoch as a UTC timestamp in
// TimeLayout, the form ParseTimestamp reads.
func AppendTimestampMicro(dst []byte, us int64) []byte {
	return appendMicros(dst, max(minMicros, min(us, maxMicros)), 0)
}

// TimestampCache is AppendTimestampMicro for a writer of many timestamps from the same
// second (a batch of messages): the date and clock are formatted once per second, the
// microseconds every time. The zero value is ready; it is not safe for concurrent use.
type TimestampCache struct {
	ok   bool
	sec  int64
	head [19]byte // "2006-01-02T15:04:05" of sec
}

// Append appends us (microseconds since the epoch) as AppendTimestampMicro does.
func (c *TimestampCache) Append(dst []byte, us int64) []byte {
	us = max(minMicros, min(us, maxMicros))
	secs := us / 1e6
	if us%1e6 < 0 {
		secs--
	}
	if !c.ok || c.sec != secs {
		var b [32]byte
		appendMicros(b[:0], us, 0)
		copy(c.head[:], b[:19])
		c.ok, c.sec = true, secs
	}
	frac := int(us - secs*1e6)
	var b [13]byte
	b[0] = '.'
	put2(b[1:], frac/10000)
	put2(b[3:], frac/100%100)
	put2(b[5:], frac%100)
	copy(b[7:], "+00:00")
	dst = append(dst, c.head[:]...)
	return append(dst, b[:]...)
}

// appendMicros writes local, microseconds since the epoch in a zone off seconds
// east of UTC (within years 0000-9999), as "2006-01-02T15:04:05.000000+07:00": the
// civil date computed once from the day number (Howard Hinnant's algorithm), not
// through time.Time's Year, Date, Clock and Nanosecond, which each compute it.
func appendMicros(dst []byte, local int64, off int) []byte {
	secs := local / 1e6
	if local%1e6 < 0 {
		secs--
	}
	us := int(local - secs*1e6)
	days := secs / 86400
	if secs%86400 < 0 {
		days--
	}
	sod := int(secs - days*86400)
	year, month, day := civilFromDays(days)
	var b [32]byte
	put4(b[0:], year)
	b[4] = '-'
	put2(b[5:], month)
	b[7] = '-'
	put2(b[8:], day)
	b[10] = 'T'
	put2(b[11:], sod/3600)
	b[13] = ':'
	put2(b[14:], sod/60%60)
	b[16] = ':'
	put2(b[17:], sod%60)
	b[19] = '.'
	put2(b[20:], us/10000)
	put2(b[22:], us/100%100)
	put2(b[24:], us%100)
	b[26] = '+'
	if off < 0 {
		b[26] = '-'
		off = -off
	}
	put2(b[27:], off/3600)
	b[29] = ':'
	put2(b[30:], off/60%60)
	return append(dst, b[:]...)
}

// twoDigits holds "00" to "99", so a pair of digits is one table read.
const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

func put2(b []byte, v int) {
	_ = b[1]
	v %= 100
	b[0], b[1] = twoDigits[2*v], twoDigits[2*v+1]
}

func put4(b []byte, v int) {
	_ = b[3]
	put2(b[0:], v/100)
	put2(b[2:], v%100)
}

// civilFromDays returns the proleptic Gregorian date of days since 1970-01-01
// (Howard Hinnant's algorithm; the inverse of daysFromCivil).
func civilFromDays(days int64) (year, month, day int) {
	z := days + 719468
	era := z / 146097
	if z%146097 < 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], March first
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = int(yoe + era*400)
	if month <= 2 {
		year++
	}
	return year, month, day
}

var (
	errTimestamp      = errors.New("bad RFC 5424 timestamp")
	errTimestampRange = errors.New("RFC 5424 timestamp outside years 0000-9999 in UTC")
)

// minMicros and maxMicros bound the times RFC 5424 can write in UTC:
// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
var (
	minMicros = daysFromCivil(0, 1, 1) * 86400 * 1e6
	maxMicros = (daysFromCivil(9999, 12, 31)*86400+86399)*1e6 + 999999
)

// ParseTimestamp reads an RFC 5424 TIMESTAMP (RFC 3339 profile, section 6.2.3) into
// microseconds since the epoch. It is hand-rolled for the ingest hot path: time.Parse
// costs several times more and allocates on some inputs. Unlike time.Parse it takes
// day 31 of short months and leap seconds: a receiver only re-emits the time.
func ParseTimestamp(b []byte) (int64, error) {
	local, ok := parseClock(b)
	if !ok {
		return 0, errTimestamp
	}
	return parseFracZone(b, local)
}

// parseClock reads the "2006-01-02T15:04:05" that starts b as seconds since the
// epoch in b's own zone.
func parseClock(b []byte) (int64, bool) {
	// 2006-01-02T15:04:05[.frac](Z|+hh:mm)
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || month < 1 || month > 12 || day < 1 || day > 31 ||
		hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	return daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec), true
}

// parseFracZone reads the fraction and zone after b's clock (parseClock gave local).
func parseFracZone(b []byte, local int64) (int64, error) {
	micros, rest, ok := secFrac(b[19:])
	if !ok {
		return 0, errTimestamp
	}
	off, ok := zoneOffset(rest)
	if !ok {
		return 0, errTimestamp
	}
	us := (local-off)*1e6 + micros
	if us < minMicros || us > maxMicros {
		// 9999-12-31T23:59:59-23:59 is 10000-01-01 in UTC, which kubeplex (writing UTC)
		// could not write validly: the caller uses the receive time instead.
		return 0, errTimestampRange
	}
	return us, nil
}

// TimestampParser is ParseTimestamp for a reader of many timestamps from the same
// second (one connection's records): the date and clock of the last valid one are
// remembered and only compared, the fraction and zone are read every time. The zero
// value is ready; it is not safe for concurrent use.
type TimestampParser struct {
	ok    bool
	clock [19]byte
	local int64
}

// Parse returns what ParseTimestamp(b) returns.
func (p *TimestampParser) Parse(b []byte) (int64, error) {
	if len(b) < 20 {
		return 0, errTimestamp
	}
	if !p.ok || string(b[:19]) != string(p.clock[:]) {
		local, ok := parseClock(b)
		if !ok {
			return 0, errTimestamp
		}
		copy(p.clock[:], b[:19])
		p.ok, p.local = true, local
	}
	return parseFracZone(b, p.local)
}

// secFrac reads an optional TIME-SECFRAC (".123456") at the start of b and returns it
// in microseconds with the rest of b. Digits past the sixth are read and dropped.
func secFrac(b []byte) (micros int64, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '.' {
		return 0, b, true
	}
	n := 1
	scale := int64(100000)
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		if scale > 0 {
			micros += int64(b[n]-'0') * scale
			scale /= 10
		}
		n++
	}
	if n == 1 {
		return 0, nil, false
	}
	return micros, b[n:], true
}

// zoneOffset reads a whole TIME-OFFSET ("Z" or "+hh:mm") into seconds east of UTC.
func zoneOffset(b []byte) (int64, bool) {
	switch {
	case len(b) == 1 && (b[0] == 'Z' || b[0] == 'z'):
		return 0, true
	case len(b) == 6 && (b[0] == '+' || b[0] == '-') && b[3] == ':':
		oh, ok1 := digits(b[1:3])
		om, ok2 := digits(b[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		off := int64(oh*3600 + om*60)
		if b[0] == '-' {
			off = -off
		}
		return off, true
	}
	return 0, false
}

func digits(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// daysFromCivil returns days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}
