package ingest

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultCoalesce is the longest a syslog connection's reader waits for more input
// before it reads, when input comes in small pieces at a rate that fills the wait
// with several messages (see coalescer). Chosen by measurement (docs/router.md#performance).
const DefaultCoalesce = 400 * time.Microsecond

// coalescer makes a syslog connection read in windows instead of once per message
// when messages arrive one by one but often, as from syslog clients and collectors
// that write each line as it comes. Each read that blocks costs the router an
// epoll wake-up, a read that returns one message, a write per drain, and a read that
// finds nothing: at 10,000 msgs/s that was most of its CPU. Waiting a short window
// before the next read turns that into one read and one write per drain per window.
//
// It waits only when it pays: the recent rate must fill a window with at least
// minPerWindow messages (so a quiet connection is read at once, as before), and the
// last read must not have filled much of the buffer (under heavy load the socket
// always has data and the reader reads as fast as it can). The wait blocks the
// goroutine's thread (a ppoll(2) on a plain TCP socket, rawSock; a nanosleep(2)
// otherwise): Go's timers round sub-millisecond waits up to a millisecond on an
// idle process, which would break the latency goal.
type coalescer struct {
	window time.Duration
	// msgs and span are decaying sums of messages published and wall time, whose
	// ratio is the connection's recent rate.
	msgs, span float64
	last       time.Time
	// sock, when the connection is plain TCP, waits on the socket itself (rawSock).
	sock *rawSock
}

// minPerWindow is the least expected number of messages in the longest window for
// waiting to be worth a sleep; perWindow is how many a window aims to gather: at
// higher rates the window shrinks to gather that many, so the added latency falls
// as the rate rises while each read still carries several messages. A window is
// never shorter than minWindow, below which the sleep's own timer slack (50 µs
// for a normal Linux thread) dominates.
const (
	minPerWindow = 2
	perWindow    = 8
	minWindow    = 50 * time.Microsecond
)

// sleepers bounds how many connection goroutines wait at once: each wait holds an OS
// thread, and many busy connections are better served by reading at once.
var sleepers atomic.Int32

func maxSleepers() int32 { return int32(2 * runtime.GOMAXPROCS(0)) }

// before is called before each read with the messages the previous read yielded,
// the bytes it returned and the buffer it had; it waits when that pays.
func (c *coalescer) before(now time.Time, msgs, got, room int) {
	wait := c.wait(now, msgs, got, room)
	if wait <= 0 {
		return
	}
	if sleepers.Add(1) > maxSleepers() {
		sleepers.Add(-1)
		return
	}
	defer sleepers.Add(-1)
	if c.sock != nil {
		// Wake early only for a burst of a quarter buffer. (Waking once the
		// window's expected messages are there cut windows short by the sleep's
		// timer slack at high rates: twice the reads at 200,000 msgs/s.)
		c.sock.waitFor(wait, room/4)
		return
	}
	ts := syscall.NsecToTimespec(int64(wait))
	_ = syscall.Nanosleep(&ts, nil) // cut short by a signal: the read just comes earlier
}

// wait updates the rate estimate and returns how long to wait before the next read.
func (c *coalescer) wait(now time.Time, msgs, got, room int) time.Duration {
	if c.window <= 0 {
		return 0
	}
	if !c.last.IsZero() {
		// Decay per read: a few dozen reads of history, which at the rates where
		// waiting matters is a few milliseconds.
		c.msgs = c.msgs*0.875 + float64(msgs)
		c.span = c.span*0.875 + now.Sub(c.last).Seconds()
	}
	c.last = now
	// Heavy load reads at once: the last read filled a good part of the buffer, so
	// the sender is ahead of the reader. A sender that is fast but writes small
	// pieces (a few KiB) still gets the shortest window: each read then carries a
	// few dozen messages instead of one piece.
	if got <= 0 || got > room/4 || c.span <= 0 {
		return 0
	}
	rate := c.msgs / c.span
	if rate*c.window.Seconds() < minPerWindow {
		return 0
	}
	return min(c.window, max(minWindow, time.Duration(perWindow/rate*float64(time.Second))))
}
