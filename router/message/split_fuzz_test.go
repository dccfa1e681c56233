package message

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzSplitText: long lines are cut as Logplex cuts them: the pieces put together
// are the text, none is over the limit or empty (but for empty text), and a cut
// never falls inside a UTF-8 sequence of valid text.
func FuzzSplitText(f *testing.F) {
	f.Add([]byte("hello world"), uint16(4))
	f.Add([]byte("héllo wörld ✓✓✓"), uint16(3))
	f.Add([]byte{0xff, 0xfe, 'a', 0xe2, 0x9c}, uint16(1))
	f.Add([]byte{}, uint16(10))
	f.Fuzz(func(t *testing.T, text []byte, max uint16) {
		limit := int(max)%64 + 4 // the longest UTF-8 sequence fits
		var pieces [][]byte
		SplitText(text, limit, func(p []byte) { pieces = append(pieces, bytes.Clone(p)) })
		if got := bytes.Join(pieces, nil); !bytes.Equal(got, text) {
			t.Fatalf("pieces %q make %q, not %q", pieces, got, text)
		}
		for _, p := range pieces {
			if len(p) > limit || (len(p) == 0 && len(text) > 0) {
				t.Fatalf("piece %q of %d bytes (limit %d)", p, len(p), limit)
			}
			if utf8.Valid(text) && !utf8.Valid(p) {
				t.Fatalf("valid text cut inside a sequence: %q", p)
			}
		}
	})
}
