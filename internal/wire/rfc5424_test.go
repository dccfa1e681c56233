package wire

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestAppendRFC5424(t *testing.T) {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{
			name: "logplex syslog drain frame",
			msg:  Message{Priority: 190, Time: ts, Hostname: "d.1234", AppName: "app", ProcID: "web.1", Text: []byte("hello")},
			want: "<190>1 2026-11-25T10:00:00.123456+00:00 d.1234 app web.1 - - hello",
		},
		{
			name: "empty fields are nil values and empty text has no trailing space",
			msg:  Message{Priority: 0, Time: ts},
			want: "<0>1 2026-11-25T10:00:00.123456+00:00 - - - - -",
		},
		{
			name: "zero time is the nil value",
			msg:  Message{Priority: 187, AppName: "app", Text: []byte("x")},
			want: "<187>1 - - app - - - x",
		},
		{
			name: "spaces and non-ascii in header fields become underscores",
			msg:  Message{Priority: 190, Time: ts, AppName: "my app", ProcID: "wéb.1", Text: []byte("ok")},
			want: "<190>1 2026-11-25T10:00:00.123456+00:00 - my_app w__b.1 - - ok",
		},
		{
			name: "app name clipped to 48 bytes",
			msg:  Message{Priority: 190, Time: ts, AppName: string(bytes.Repeat([]byte("a"), 60))},
			want: "<190>1 2026-11-25T10:00:00.123456+00:00 - " + string(bytes.Repeat([]byte("a"), 48)) + " - - -",
		},
		{
			name: "out of range priority falls back to local7.info",
			msg:  Message{Priority: 200, Time: ts},
			want: "<190>1 2026-11-25T10:00:00.123456+00:00 - - - - -",
		},
		{
			name: "negative offset",
			msg:  Message{Priority: 190, Time: ts.In(time.FixedZone("x", -(5*3600 + 30*60)))},
			want: "<190>1 2026-11-25T04:30:00.123456-05:30 - - - - -",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendRFC5424(nil, &tt.msg))
			if got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			if _, err := Parse([]byte(got)); err != nil {
				t.Fatalf("go-syslog refuses our own record: %v", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Message
		wantErr bool
	}{
		{
			name: "log-shuttle frame",
			in:   "<190>1 2026-11-25T10:00:00.123456+00:00 shuttle myapp shuttle - - a line",
			want: Message{Priority: 190, Time: time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC),
				Hostname: "shuttle", AppName: "myapp", ProcID: "shuttle", Text: []byte("a line")},
		},
		{name: "not syslog", in: "hello world", wantErr: true},
		{name: "version zero", in: "<190>0 - - - - - -", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got.Priority != tt.want.Priority || !got.Time.Equal(tt.want.Time) || got.Hostname != tt.want.Hostname ||
				got.AppName != tt.want.AppName || got.ProcID != tt.want.ProcID || got.MsgID != tt.want.MsgID ||
				!bytes.Equal(got.Text, tt.want.Text) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestScan(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Fields
		wantErr bool
	}{
		{
			name: "full record",
			in:   "<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 ID47 - hello world",
			want: Fields{Priority: 190, Timestamp: []byte("2026-11-25T10:00:00.123456+00:00"), Hostname: []byte("host"),
				AppName: []byte("app"), ProcID: []byte("web.1"), MsgID: []byte("ID47"), Text: []byte("hello world")},
		},
		{
			name: "nil values and no message",
			in:   "<0>1 - - - - - -",
			want: Fields{Priority: 0},
		},
		{
			name: "structured data with escapes",
			in:   `<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appl\]ication"][x@1 a="\"q\""] msg`,
			want: Fields{Priority: 165, Timestamp: []byte("2003-10-11T22:14:15.003Z"), Hostname: []byte("mymachine"),
				AppName: []byte("evntslog"), MsgID: []byte("ID47"),
				StructuredData: []byte(`[exampleSDID@32473 iut="3" eventSource="Appl\]ication"][x@1 a="\"q\""]`), Text: []byte("msg")},
		},
		{name: "no PRI", in: "190>1 - - - - - -", wantErr: true},
		{name: "PRI over 191", in: "<192>1 - - - - - -", wantErr: true},
		{name: "PRI leading zero", in: "<01>1 - - - - - -", wantErr: true},
		{name: "version zero", in: "<1>0 - - - - - -", wantErr: true},
		{name: "version too long", in: "<1>1000 - - - - - -", wantErr: true},
		{name: "truncated header", in: "<1>1 - - -", wantErr: true},
		{name: "double space", in: "<1>1 -  - - - -", wantErr: true},
		{name: "bad timestamp", in: "<1>1 yesterday - - - - -", wantErr: true},
		{name: "app name too long", in: "<1>1 - - " + string(bytes.Repeat([]byte("a"), 49)) + " - - -", wantErr: true},
		{name: "unterminated SD", in: `<1>1 - - - - - [a b="c"`, wantErr: true},
		{name: "junk after SD", in: `<1>1 - - - - - [a]x`, wantErr: true},
		{name: "control byte in header", in: "<1>1 - h\x01 - - - -", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Scan([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrMalformedRecord) {
					t.Fatalf("error %v does not wrap ErrMalformedRecord", err)
				}
				return
			}
			if !fieldsEqual(got, tt.want) {
				t.Fatalf("got  %s\nwant %s", dumpFields(got), dumpFields(tt.want))
			}
		})
	}
}

func fieldsEqual(a, b Fields) bool {
	return a.Priority == b.Priority && bytes.Equal(a.Timestamp, b.Timestamp) && bytes.Equal(a.Hostname, b.Hostname) &&
		bytes.Equal(a.AppName, b.AppName) && bytes.Equal(a.ProcID, b.ProcID) && bytes.Equal(a.MsgID, b.MsgID) &&
		bytes.Equal(a.StructuredData, b.StructuredData) && bytes.Equal(a.Text, b.Text)
}

func dumpFields(f Fields) string {
	return string(bytes.Join([][]byte{{f.Priority}, f.Timestamp, f.Hostname, f.AppName, f.ProcID, f.MsgID, f.StructuredData, f.Text}, []byte("|")))
}

func TestScanAllocatesNothing(t *testing.T) {
	rec := []byte("<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 - - hello world")
	if n := testing.AllocsPerRun(100, func() { _, _ = Scan(rec) }); n != 0 {
		t.Fatalf("Scan allocates %v times per record", n)
	}
}

// FuzzRFC5424 checks that Scan never panics, that it agrees with go-syslog on every
// record go-syslog accepts, and that encode → Scan → encode is stable.
func FuzzRFC5424(f *testing.F) {
	for _, s := range []string{
		"<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 - - hello",
		"<0>1 - - - - - -",
		`<165>1 2003-10-11T22:14:15.003Z mymachine evntslog - ID47 [exampleSDID@32473 iut="3"] msg`,
		"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
		"<1>1 - - - - - [a b=\"\\\"\"]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fields, scanErr := Scan(in)
		ref, refErr := Parse(in)
		if refErr == nil && scanErr != nil {
			t.Fatalf("go-syslog accepts %q but Scan refuses: %v", in, scanErr)
		}
		if refErr == nil {
			if fields.Priority != ref.Priority || string(fields.Hostname) != ref.Hostname ||
				string(fields.AppName) != ref.AppName || string(fields.ProcID) != ref.ProcID ||
				string(fields.MsgID) != ref.MsgID {
				t.Fatalf("Scan and go-syslog disagree on %q: %s vs %+v", in, dumpFields(fields), ref)
			}
		}
		if scanErr != nil {
			return
		}
		m := Message{Priority: fields.Priority, Hostname: string(fields.Hostname), AppName: string(fields.AppName),
			ProcID: string(fields.ProcID), MsgID: string(fields.MsgID), StructuredData: fields.StructuredData, Text: fields.Text}
		out := AppendRFC5424(nil, &m)
		again, err := Scan(out)
		if err != nil {
			t.Fatalf("Scan refuses re-encoded %q: %v", out, err)
		}
		if again.Priority != fields.Priority || !bytes.Equal(again.AppName, fields.AppName) ||
			!bytes.Equal(again.ProcID, fields.ProcID) || !bytes.Equal(again.Text, fields.Text) ||
			!bytes.Equal(again.StructuredData, fields.StructuredData) {
			t.Fatalf("round trip changed %q into %q", in, out)
		}
	})
}

func BenchmarkScan(b *testing.B) {
	rec := []byte("<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 - - " + string(bytes.Repeat([]byte("x"), 140)))
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := Scan(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseGoSyslog(b *testing.B) {
	rec := []byte("<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 - - " + string(bytes.Repeat([]byte("x"), 140)))
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRFC5424(b *testing.B) {
	m := Message{Priority: 190, Time: time.Now(), Hostname: "d.0b2c", AppName: "app", ProcID: "web.1", Text: bytes.Repeat([]byte("x"), 140)}
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = AppendRFC5424(buf[:0], &m)
	}
}

// TestHeaderFieldEveryByte: the word-at-a-time scan ends a field and refuses a byte
// exactly where a byte-by-byte reading does, for every byte value at every position
// of a word, before and after a run of clean words.
func TestHeaderFieldEveryByte(t *testing.T) {
	ref := func(b []byte) (int, bool) {
		for i, c := range b {
			if c == ' ' {
				return i, i > 0 // an empty field is refused
			}
			if c < 33 || c > 126 {
				return i, false
			}
		}
		return len(b), false
	}
	for lead := 0; lead < 24; lead++ {
		for c := 0; c < 256; c++ {
			b := append(bytes.Repeat([]byte("a"), lead), byte(c))
			b = append(b, "bcdefghijklmnop q"...)
			end, ok := ref(b)
			field, next, err := headerField(b, 0, 1000)
			if ok != (err == nil) {
				t.Fatalf("lead %d byte %#x: err %v, want ok=%v", lead, c, err, ok)
			}
			if ok && (len(field) != end || next != end+1) {
				t.Fatalf("lead %d byte %#x: field %q next %d, want end %d", lead, c, field, next, end)
			}
		}
	}
}
