package ingest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
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

// The raw socket path on a real TCP connection: a coalescing wait returns once the
// bytes it waits for are queued; a read that finds nothing restores the low-water
// mark, so a blocking read is woken by a single byte rather than a window's worth;
// the read deadline (which Shutdown uses to wake readers) and the peer's close end
// a read as net.Conn.Read would.
func TestRawSock(t *testing.T) {
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
	s := newRawSock(rawConn(server))
	if s == nil {
		t.Fatal("no raw socket for a TCP connection")
	}
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	// Queued already: a wait of a minute for 3 bytes returns at once (a failure
	// would show as the test's own timeout, not as a flaky timing).
	testenv.Until(t, "the bytes queued", func() bool {
		s.waitFor(time.Minute, 3)
		return true
	})
	b := make([]byte, 8)
	if n, err := s.read(b); err != nil || string(b[:n]) != "abc" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
	// A wait for 16 KiB with nothing coming ends with its window.
	s.waitFor(time.Millisecond, 16<<10)
	if got := sockLowat(t, server); got != 16<<10 {
		t.Fatalf("low-water mark %d during coalescing, want %d", got, 16<<10)
	}
	// Raised mark, nothing queued: the read parks, and one byte must wake it.
	done := make(chan string, 1)
	go func() {
		n, err := s.read(b)
		if err != nil {
			done <- err.Error()
			return
		}
		done <- string(b[:n])
	}()
	// The read found nothing and restored the default mark before it parked.
	testenv.Until(t, "the low-water mark restored", func() bool { return sockLowat(t, server) == 1 })
	if _, err := client.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "y" {
		t.Fatalf("read %q, want y", got)
	}
	// The read deadline ends a parked read with a timeout.
	go func() {
		_, err := s.read(b)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			done <- "timeout"
			return
		}
		done <- fmt.Sprint(err)
	}()
	if err := server.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "timeout" {
		t.Fatalf("read after the deadline: %s, want a timeout", got)
	}
	if err := server.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	// The peer's close is io.EOF.
	_ = client.Close()
	if _, err := s.read(b); !errors.Is(err, io.EOF) {
		t.Fatalf("read after close: %v, want EOF", err)
	}
}

// sockLowat reads c's SO_RCVLOWAT from the kernel.
func sockLowat(t *testing.T, c net.Conn) int {
	t.Helper()
	raw := rawConn(c)
	v := -1
	if err := raw.Control(func(fd uintptr) {
		v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT)
	}); err != nil {
		t.Fatal(err)
	}
	return v
}
