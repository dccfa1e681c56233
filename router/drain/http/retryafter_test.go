package http

import (
	"testing"
	"time"
)

// FuzzRetryAfter: whatever a drain answers in Retry-After, the wait it asks for is
// never negative, and a number of seconds is taken as it is written.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "120", "4294967295", "4294967296", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "Mon, 01 Jan 3000 00:00:00 GMT", " 5", "1e3"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		d := retryAfter(h, now)
		if d < 0 {
			t.Fatalf("Retry-After %q asks for %v", h, d)
		}
	})
}
