package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		max          int
		allowNewline bool
		want         []string
		wantErr      error
	}{
		{name: "two frames", in: "5 hello3 abc", want: []string{"hello", "abc"}, wantErr: io.EOF},
		{name: "empty stream", in: "", wantErr: io.EOF},
		{name: "LF between frames tolerated", in: "1 a\n1 b\r\n", want: []string{"a", "b"}, wantErr: io.EOF},
		{name: "cut inside frame", in: "10 abc", wantErr: io.ErrUnexpectedEOF},
		{name: "cut inside length", in: "12", wantErr: io.ErrUnexpectedEOF},
		{name: "not a length", in: "x abc", wantErr: ErrMalformedFrame},
		{name: "leading zero", in: "05 hello", wantErr: ErrMalformedFrame},
		{name: "missing space", in: "5xhello", wantErr: ErrMalformedFrame},
		{name: "over limit refused before reading", in: "101 " + strings.Repeat("a", 101), max: 100, wantErr: ErrFrameTooLarge},
		{name: "huge length refused", in: "99999999999999999999 a", max: 100, wantErr: ErrFrameTooLarge},
		{name: "exactly the limit", in: "100 " + strings.Repeat("a", 100), max: 100, want: []string{strings.Repeat("a", 100)}, wantErr: io.EOF},
		{name: "newline framing off by default", in: "<1>1 - - - - - -\n", wantErr: ErrMalformedFrame},
		{name: "newline framing", in: "<1>1 a\n<2>1 b\r\n<3>1 c", allowNewline: true, want: []string{"<1>1 a", "<2>1 b", "<3>1 c"}, wantErr: io.EOF},
		{name: "mixed framing", in: "6 <1>1 a<2>1 b\n", allowNewline: true, want: []string{"<1>1 a", "<2>1 b"}, wantErr: io.EOF},
		{name: "newline frame over limit", in: "<1>" + strings.Repeat("a", 200) + "\n", max: 100, allowNewline: true, wantErr: ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// OneByteReader makes every read short, which exercises the buffering paths.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				fr := NewFrameReader(r, tt.max)
				fr.AllowNewline = tt.allowNewline
				var got []string
				var err error
				for {
					var b []byte
					if b, err = fr.Next(); err != nil {
						break
					}
					got = append(got, string(b))
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestSplitFrames(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr error
	}{
		{name: "frames", in: "5 hello3 abc", want: []string{"hello", "abc"}},
		{name: "trailing newline", in: "5 hello\n", want: []string{"hello"}},
		{name: "empty body", in: ""},
		{name: "cut short", in: "5 hell", wantErr: ErrMalformedFrame},
		{name: "garbage", in: "hello", wantErr: ErrMalformedFrame},
		{name: "too large", in: "99999 x", wantErr: ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			n, err := SplitFrames([]byte(tt.in), 1000, func(r []byte) error { got = append(got, string(r)); return nil })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if n != len(got) || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %d %q, want %q", n, got, tt.want)
			}
		})
	}
}

// FuzzFraming checks that framing round-trips any records, and that the streaming and
// in-memory readers agree on arbitrary input.
func FuzzFraming(f *testing.F) {
	f.Add([]byte("5 hello3 abc"), uint16(100))
	f.Add([]byte("<1>1 a\n"), uint16(10))
	f.Add([]byte("0 "), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		limit := int(max)%4096 + 1
		var fromSplit [][]byte
		_, splitErr := SplitFrames(in, limit, func(r []byte) error {
			fromSplit = append(fromSplit, append([]byte(nil), r...))
			return nil
		})
		fr := NewFrameReader(bytes.NewReader(in), limit)
		var fromReader [][]byte
		var readErr error
		for {
			var b []byte
			if b, readErr = fr.Next(); readErr != nil {
				break
			}
			fromReader = append(fromReader, append([]byte(nil), b...))
		}
		if splitErr == nil {
			if !errors.Is(readErr, io.EOF) {
				t.Fatalf("SplitFrames accepts %q, FrameReader fails: %v", in, readErr)
			}
			if !bytes.Equal(bytes.Join(fromSplit, []byte{0}), bytes.Join(fromReader, []byte{0})) || len(fromSplit) != len(fromReader) {
				t.Fatalf("readers disagree on %q", in)
			}
			// Re-frame what was read; it must read back identically.
			var out []byte
			for _, r := range fromSplit {
				out = AppendFrame(out, r)
			}
			var again [][]byte
			if _, err := SplitFrames(out, limit, func(r []byte) error { again = append(again, r); return nil }); err != nil {
				t.Fatalf("re-framed input refused: %v", err)
			}
			if len(again) != len(fromSplit) {
				t.Fatalf("round trip lost frames")
			}
		}
	})
}

func BenchmarkFrameReader(b *testing.B) {
	rec := []byte("<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 - - " + strings.Repeat("x", 140))
	var stream []byte
	for range 1000 {
		stream = AppendFrame(stream, rec)
	}
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		fr := NewFrameReader(bytes.NewReader(stream), 0)
		for {
			if _, err := fr.Next(); err != nil {
				break
			}
		}
	}
}
