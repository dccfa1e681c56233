package wire

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTimestampMatchesTimeFormat(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("a", 3600*14), time.FixedZone("b", -3600*12-45*60)}
	for _, sec := range []int64{0, 1, 951782400, 1764064800, 4102444799} {
		for _, ns := range []int{0, 999, 1000, 123456789, 999999999} {
			for _, z := range zones {
				tm := time.Unix(sec, int64(ns)).In(z)
				if got, want := string(AppendTimestamp(nil, tm)), tm.Format(TimeLayout); got != want {
					t.Errorf("AppendTimestamp(%v) = %q, want %q", tm, got, want)
				}
			}
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: "2026-11-25T10:00:00.123456+00:00"},
		{in: "2026-11-25T10:00:00Z"},
		{in: "2026-11-25T10:00:00.1Z"},
		{in: "2026-11-25T10:00:00.123456789Z"},
		{in: "1985-04-12T23:20:50.52Z"},
		{in: "1985-04-12T19:20:50.52-04:00"},
		{in: "2003-10-11T22:14:15.003Z"},
		{in: "2000-02-29T23:59:59+14:00"},
		{in: "1969-12-31T23:59:59Z"},
		{in: "2026-11-25 10:00:00Z", wantErr: true},
		{in: "2026-13-25T10:00:00Z", wantErr: true},
		{in: "2026-11-25T10:00:00", wantErr: true},
		{in: "2026-11-25T10:00:00.Z", wantErr: true},
		{in: "2026-11-25T10:00:00+0000", wantErr: true},
		{in: "2026-11-25T24:00:00Z", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTimestamp([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			ref, err := time.Parse(time.RFC3339Nano, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if want := ref.UnixMicro(); got != want {
				t.Errorf("ParseTimestamp = %d, want %d", got, want)
			}
		})
	}
}

// FuzzParseTimestamp checks agreement with time.Parse on everything both accept.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2026-11-25T10:00:00.123456+00:00", "1985-04-12T19:20:50.52-04:00", "2000-02-29T23:59:59Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTimestamp([]byte(s))
		// The cached parser agrees, cold, warmed on another time, and warmed on s.
		var p TimestampParser
		for _, in := range []string{s, "2026-11-25T10:00:00.1Z", s, s} {
			g, e := p.Parse([]byte(in))
			w, we := ParseTimestamp([]byte(in))
			if g != w || !errors.Is(e, we) && (e != nil || we != nil) {
				t.Fatalf("TimestampParser.Parse(%q) = %d, %v; ParseTimestamp = %d, %v", in, g, e, w, we)
			}
		}
		if err != nil {
			return
		}
		ref, rerr := time.Parse(time.RFC3339Nano, s)
		if rerr != nil {
			// time.Parse refuses day 31 of short months and leap seconds; the router
			// only re-emits timestamps, so it accepts them.
			return
		}
		if got != ref.UnixMicro() {
			t.Fatalf("ParseTimestamp(%q) = %d, time.Parse = %d", s, got, ref.UnixMicro())
		}
		// Whatever it accepts, kubeplex can write back as a valid RFC 5424 time.
		if y := time.UnixMicro(got).UTC().Year(); y < 0 || y > 9999 {
			t.Fatalf("ParseTimestamp(%q) accepted year %d in UTC", s, y)
		}
	})
}

// TestTimestampYearRange: times that leave years 0000-9999 once in UTC are refused
// when read (the caller takes the receive time) and clamped when written, so no
// frame kubeplex writes carries a time strict receivers refuse.
func TestTimestampYearRange(t *testing.T) {
	for _, s := range []string{"9999-12-31T23:59:59.000000-23:59", "0000-01-01T00:00:00+00:01"} {
		if _, err := ParseTimestamp([]byte(s)); err == nil {
			t.Errorf("ParseTimestamp(%q) accepted a time outside years 0000-9999 in UTC", s)
		}
	}
	for _, s := range []string{"9999-12-31T23:59:59.999999Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59+23:59"} {
		if _, err := ParseTimestamp([]byte(s)); err != nil {
			t.Errorf("ParseTimestamp(%q) = %v", s, err)
		}
	}
	for tm, want := range map[time.Time]string{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC): "9999-12-31T23:59:59.999999+00:00",
		time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC):  "0000-01-01T00:00:00.000000+00:00",
	} {
		if got := string(AppendTimestamp(nil, tm)); got != want {
			t.Errorf("AppendTimestamp(%v) = %q, want %q", tm, got, want)
		}
	}
}

func BenchmarkParseTimestamp(b *testing.B) {
	ts := []byte("2026-11-25T10:00:00.123456+00:00")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseTimestamp(ts)
	}
}

// TestTimestampRoundTrip: what AppendTimestampMicro writes, ParseTimestamp reads back.
func TestTimestampRoundTrip(t *testing.T) {
	for _, us := range []int64{0, 1, -1, 1764064800123456, 4102444799999999} {
		if got, err := ParseTimestamp(AppendTimestampMicro(nil, us)); err != nil || got != us {
			t.Errorf("round trip of %d = %d, %v", us, got, err)
		}
	}
}

// TestAppendTimestampAcrossRange: the hand-rolled writer agrees with time.Format
// in TimeLayout across the whole 0000-9999 range, both sides of the epoch and of
// leap days, in UTC and in zones east and west of it.
func TestAppendTimestampAcrossRange(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("east", 5*3600+45*60), time.FixedZone("west", -(9*3600 + 30*60))}
	check := func(us int64) {
		for _, z := range zones {
			tm := time.UnixMicro(us).In(z)
			if y := tm.Year(); y < 0 || y > 9999 {
				continue // clamped: TestTimestampYearRange
			}
			if got, want := string(AppendTimestamp(nil, tm)), tm.Format(TimeLayout); got != want {
				t.Fatalf("AppendTimestamp(%d in %s) = %q, want %q", us, z, got, want)
			}
		}
		if got, want := string(AppendTimestampMicro(nil, us)), time.UnixMicro(us).UTC().Format(TimeLayout); got != want {
			t.Fatalf("AppendTimestampMicro(%d) = %q, want %q", us, got, want)
		}
	}
	for _, us := range []int64{0, 1, -1, 999999, -999999, 1e6, -1e6, 86400e6 - 1, -86400e6, minMicros, maxMicros,
		time.Date(2000, 2, 29, 23, 59, 59, 999999000, time.UTC).UnixMicro(),
		time.Date(1900, 3, 1, 0, 0, 0, 0, time.UTC).UnixMicro(),
		time.Date(1600, 2, 29, 12, 0, 0, 0, time.UTC).UnixMicro()} {
		check(us)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		check(minMicros + r.Int64N(maxMicros-minMicros+1))
	}
}

// TestTimestampCache: one cache over a walk of times that stays in a second, steps to
// the next one, jumps back and across the epoch and the year limits writes what
// AppendTimestampMicro writes for each.
func TestTimestampCache(t *testing.T) {
	var c TimestampCache
	r := rand.New(rand.NewPCG(1, 2))
	us := make([]int64, 0, 100_020)
	us = append(us, 0, -1, -999999, -1000000, -1000001, 999999, 1000000, 1764064799999999, 1764064800000000,
		minMicros-1, minMicros, maxMicros, maxMicros+1, 1<<62, -(1 << 62))
	at := int64(1764064800123456)
	for range 100000 {
		switch r.IntN(10) {
		case 0:
			at = r.Int64N(maxMicros-minMicros) + minMicros
		case 1:
			at -= r.Int64N(3e6)
		default:
			at += r.Int64N(200)
		}
		us = append(us, at)
	}
	for _, v := range us {
		if got, want := string(c.Append([]byte("x"), v)), "x"+string(AppendTimestampMicro(nil, v)); got != want {
			t.Fatalf("cache at %d: %q, want %q", v, got, want)
		}
	}
}

// TestTimestampParser: one parser over times that share a clock, differ only in the
// fraction or zone, are refused after a valid one with the same clock, or move on
// returns what ParseTimestamp returns for each.
func TestTimestampParser(t *testing.T) {
	var p TimestampParser
	for _, in := range []string{
		"2026-11-25T10:00:00.123456+00:00", "2026-11-25T10:00:00.123457+00:00", "2026-11-25T10:00:00Z",
		"2026-11-25T10:00:00.5-04:00", "2026-11-25T10:00:00.5-4:00", "2026-11-25T10:00:00.", "2026-11-25T10:00:00",
		"2026-11-25T10:00:00.000001+00:00", "2026-11-25t10:00:00Z", "2026-11-25T10:00:01Z", "2026-13-25T10:00:01Z",
		"2026-11-25T10:00:01.9Z", "9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59Z", "", "x",
	} {
		g, e := p.Parse([]byte(in))
		w, we := ParseTimestamp([]byte(in))
		if g != w || (e == nil) != (we == nil) || e != nil && e.Error() != we.Error() {
			t.Errorf("Parse(%q) = %d, %v; ParseTimestamp = %d, %v", in, g, e, w, we)
		}
	}
}

func BenchmarkTimestampParser(b *testing.B) {
	ts := []byte("2026-11-25T10:00:00.123456+00:00")
	var p TimestampParser
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.Parse(ts)
	}
}
