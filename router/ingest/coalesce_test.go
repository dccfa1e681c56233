package ingest

import (
	"testing"
	"time"
)

// The coalescer waits only when the connection's recent rate fills a window with
// several messages and the last read was small; the wait shrinks as the rate grows.
// Driven by a synthetic clock: what is tested is the decision, not the sleep.
func TestCoalescerDecision(t *testing.T) {
	const window = 250 * time.Microsecond
	tests := []struct {
		name   string
		window time.Duration
		gap    time.Duration // between reads
		msgs   int           // messages per read
		got    int           // bytes per read
		want   time.Duration
	}{
		{"quiet: 1,000 msgs/s read at once", window, time.Millisecond, 1, 204, 0},
		{"10,000 msgs/s in small pieces: the whole window", window, 100 * time.Microsecond, 1, 204, window},
		{"100,000 msgs/s: a shorter window of ~8 messages", window, 10 * time.Microsecond, 1, 204, 80 * time.Microsecond},
		{"125,000 msgs/s: 64 µs", window, 8 * time.Microsecond, 1, 204, 64 * time.Microsecond},
		{"200,000 msgs/s: even the shortest window holds more than 8, read at once", window, 5 * time.Microsecond, 1, 204, 0},
		{"the last read held 16 messages: read at once", window, 100 * time.Microsecond, 16, 16 * 204, 0},
		{"heavy load fills the buffer: read at once", window, 100 * time.Microsecond, 100, 60 << 10, 0},
		{"last read ended the stream or failed", window, 100 * time.Microsecond, 1, 0, 0},
		{"off", 0, 100 * time.Microsecond, 1, 204, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := coalescer{window: tt.window}
			now := time.Unix(1_700_000_000, 0)
			var got time.Duration
			for range 200 { // long enough for the decaying rate to settle
				got = c.wait(now, tt.msgs, tt.got, 64<<10)
				now = now.Add(tt.gap)
			}
			// The estimate is a ratio of decayed sums: allow 2% for its rounding.
			if d := got - tt.want; d < -tt.want/50 || d > tt.want/50 {
				t.Fatalf("wait = %v, want %v", got, tt.want)
			}
		})
	}
}

// A connection that was busy and goes quiet stops waiting within a few reads.
func TestCoalescerQuietens(t *testing.T) {
	c := coalescer{window: 250 * time.Microsecond}
	now := time.Unix(1_700_000_000, 0)
	for range 100 {
		c.wait(now, 1, 204, 64<<10)
		now = now.Add(100 * time.Microsecond)
	}
	if c.wait(now, 1, 204, 64<<10) == 0 {
		t.Fatal("busy connection: no wait")
	}
	reads := 0
	for ; reads < 50; reads++ {
		now = now.Add(10 * time.Millisecond)
		if c.wait(now, 1, 204, 64<<10) == 0 {
			break
		}
	}
	if reads >= 50 {
		t.Fatal("quiet connection still waits after 50 reads")
	}
}
