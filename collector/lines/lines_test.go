package lines

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func split(max int, writes ...string) []string {
	var out []string
	s := Splitter{Max: max, Emit: func(l []byte) { out = append(out, string(l)) }}
	for _, w := range writes {
		_, _ = s.Write([]byte(w))
	}
	s.Flush()
	return out
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		writes []string
		want   []string
	}{
		{name: "lines", writes: []string{"a\nb\n"}, want: []string{"a", "b"}},
		{name: "line across writes", writes: []string{"he", "llo\nwor", "ld\n"}, want: []string{"hello", "world"}},
		{name: "partial last line flushed", writes: []string{"a\nlast"}, want: []string{"a", "last"}},
		{name: "crlf", writes: []string{"a\r\nb\r\n"}, want: []string{"a", "b"}},
		{name: "empty lines kept", writes: []string{"\n\nx\n"}, want: []string{"", "", "x"}},
		{name: "split at max", max: 4, writes: []string{"abcdefghij\n"}, want: []string{"abcd", "efgh", "ij"}},
		{name: "exact max", max: 4, writes: []string{"abcd\nabcdabcd\n"}, want: []string{"abcd", "abcd", "abcd"}},
		{name: "split across writes", max: 4, writes: []string{"ab", "cdef", "g\n"}, want: []string{"abcd", "efg"}},
		{name: "utf-8 boundary", max: 4, writes: []string{"abcé\n"}, want: []string{"abc", "é"}},
		{name: "nothing", writes: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := split(tt.max, tt.writes...)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzSplitter: whatever the writes, no message is longer than Max, valid UTF-8 stays
// valid, and joining the messages (with the newlines back) gives the input.
func FuzzSplitter(f *testing.F) {
	f.Add([]byte("a\nb\r\nccc"), uint8(3), uint8(2))
	f.Add([]byte("ééééé\n"), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, max, cut uint8) {
		if max < 4 || bytes.Contains(in, []byte("\r")) {
			return // CR before LF is trimmed; the property below is about the rest
		}
		c := int(cut) % (len(in) + 1)
		var got [][]byte
		s := Splitter{Max: int(max), Emit: func(l []byte) { got = append(got, append([]byte(nil), l...)) }}
		_, _ = s.Write(in[:c])
		_, _ = s.Write(in[c:])
		s.Flush()
		var joined []byte
		for _, m := range got {
			if len(m) > int(max) {
				t.Fatalf("message of %d bytes, max %d", len(m), max)
			}
			if utf8.Valid(in) && !utf8.Valid(m) {
				t.Fatalf("valid input split into invalid %q", m)
			}
			joined = append(joined, m...)
		}
		if want := bytes.ReplaceAll(in, []byte("\n"), nil); !bytes.Equal(joined, want) {
			t.Fatalf("messages %q do not add up to %q", got, in)
		}
	})
}
