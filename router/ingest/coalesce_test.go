package ingest

import (
	"net"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
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
		{"1,000,000 msgs/s in 4 KiB pieces: never below the floor", window, 20 * time.Microsecond, 20, 20 * 204, minWindow},
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

// The low-water mark on a real socket: raised, a queued byte is still seen as
// pending (a non-blocking read would get it); restored, a blocking read is woken
// by a single byte.
func TestSockLowat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // the test is over
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Close() }() // the test is over
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = server.Close() }() // the test is over
	s := newSockLowat(rawConn(server))
	if s.raw == nil {
		t.Fatal("no raw socket for a TCP connection")
	}
	s.wakeAt(16 << 10)
	if s.pending() {
		t.Fatal("pending before anything was sent")
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	testenv.Until(t, "the byte queued", s.pending)
	s.wakeEach()
	// A failure guard, not a timing: the read must return the byte at all.
	_ = server.SetReadDeadline(time.Now().Add(time.Minute))
	b := make([]byte, 8)
	if n, err := server.Read(b); err != nil || string(b[:n]) != "x" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
	// Restored: a blocking read waits for one byte, not 16 KiB.
	s.wakeAt(16 << 10)
	s.wakeEach()
	done := make(chan error, 1)
	go func() {
		_, err := server.Read(b)
		done <- err
	}()
	if _, err := client.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
