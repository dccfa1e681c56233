package queue

import (
	"bytes"
	"testing"
	"time"
)

// FuzzParseNotice: the sidecar reads L12/L13 counts back from wrapper lines, which
// any worker can imitate: whatever the text, a count it takes is positive and
// written again the same way.
func FuzzParseNotice(f *testing.F) {
	since := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	f.Add(AppendNotice(nil, true, 42, since))
	f.Add(AppendNotice(nil, false, 1, since))
	f.Add([]byte("Error L12: 99999999999999999999 messages dropped since x"))
	f.Add([]byte("Error L13: -3 messages lost since 2026-12-01T10:00:00Z"))
	f.Fuzz(func(t *testing.T, text []byte) {
		n, at, ok := ParseNotice(text)
		if !ok {
			return
		}
		if n <= 0 {
			t.Fatalf("%q: count %d taken", text, n)
		}
		dropped := bytes.HasPrefix(text, prefixL12)
		n2, at2, ok2 := ParseNotice(AppendNotice(nil, dropped, n, at))
		if !ok2 || n2 != n || !at2.Equal(at.UTC().Truncate(time.Microsecond)) && !at2.Equal(at) {
			t.Fatalf("%q: (%d, %v) read back as (%d, %v, %v)", text, n, at, n2, at2, ok2)
		}
	})
}
