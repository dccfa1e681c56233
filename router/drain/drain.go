// Package drain is what every drain type shares: the Drain interface a destination
// implements, the bounded drop-oldest queue in front of it, the runner that moves
// batches from queue to destination with exact accounting, and the dial policy that
// keeps drains off internal addresses.
//
// Delivery is at-most-once, like Logplex: every message offered to a drain is either
// delivered or counted as dropped, and drops are announced in-band
// (L10) at the head of the next delivered batch.
package drain

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/url"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/message"
)

// Drain delivers batches to one destination. Each drain type is one package
// (router/drain/syslog, router/drain/http) with a type implementing it.
type Drain interface {
	// Limits bounds the batches the runner hands to Deliver.
	Limits() Limits
	// Deliver sends b. It returns how many records from the front of b reached the
	// destination; the runner counts the rest as dropped. It retries what its protocol
	// calls transient and returns early only when ctx ends.
	Deliver(ctx context.Context, b *Batch) (int, error)
	// Close releases connections.
	Close() error
}

// Immediate is implemented by drains that can take bytes from the producer's
// goroutine without waiting (a plain TCP syslog connection that is up). The runner
// uses it when it is idle, so that a message does not wait for the runner goroutine
// to be woken and scheduled: on a busy machine that hand-off is where the latency
// tail comes from.
type Immediate interface {
	// TryWrite writes b.Bytes()[from:] as far as the destination takes it at once and
	// returns the offset reached (from when it wrote nothing, for whatever reason; the
	// runner's Deliver then carries on from there and deals with errors).
	TryWrite(b *Batch, from int) int
}

// Concurrent is implemented by drains whose Deliver may run several times at once
// (an HTTP drain: one request per call). The runner then keeps up to InFlight()
// batches in flight while the queue has more, each taken in queue order; they may
// complete out of order. A drain without it gets one batch at a time.
type Concurrent interface {
	InFlight() int
}

// IdleCloser is a drain that holds a connection open between batches. The runner
// asks it, whenever it has nothing to deliver, how long until its connection has
// been unused for its idle timeout, and closes it then: otherwise a connection that
// carried one batch stays open until the next, and every replica keeps one open to
// every drain it ever served (docs/scaling.md). Both are called with the runner's
// delivery lock held, like Deliver and TryWrite.
type IdleCloser interface {
	// IdleIn returns the time left until the connection is due to close, and false
	// when no connection is open.
	IdleIn(now time.Time) (time.Duration, bool)
	// CloseIdle closes the connection.
	CloseIdle()
}

// OriginUser is a drain that uses where its records came from (Batch.Origin: the
// pod and node of the collector that sent them). Only an app with such a drain has
// origins carried into its drain queues, so the others pay nothing for them.
type OriginUser interface {
	UsesOrigin() bool
}

// Forwarding is implemented by a drain that hands its batches to another router
// replica, an owner of the drain, which delivers them (router/forward): what it
// takes is counted as Forwarded, not Delivered, because the owner counts the same
// lines again when it delivers them.
type Forwarding interface {
	Forwards()
}

// Limits bound one batch: at most Messages frames of at most Bytes in all.
type Limits struct {
	Messages int
	Bytes    int
}

// Config is one drain as the routing table describes it.
type Config struct {
	routing.Drain
	// App is the ID of the app the drain belongs to.
	App string
	// URL is Drain.URL parsed.
	URL *url.URL
}

// Equal reports whether two configs describe the same destination and credentials,
// so a table swap can keep a running drain and its connections.
func (c *Config) Equal(o *Config) bool {
	if c.ID != o.ID || c.Token != o.Token || c.Drain.URL != o.Drain.URL || c.Username != o.Username ||
		c.Password != o.Password || c.HMACKey != o.HMACKey || c.Compression != o.Compression ||
		!maps.Equal(c.Headers, o.Headers) {
		return false
	}
	if (c.TLS == nil) != (o.TLS == nil) {
		return false
	}
	return c.TLS == nil || *c.TLS == *o.TLS
}

// Env is what the router gives every drain.
type Env struct {
	// Dialer opens connections after checking the address policy at dial time.
	Dialer *Dialer
	// Report records a delivery error for the health report (already redacted).
	Report func(err error)
	// Announce writes a platform line into the app's stream (L14 and the like).
	Announce func(text string)
	Logger   *slog.Logger
	// UserAgent is sent by HTTP drains.
	UserAgent string
}

// Batch is a run of octet-counted frames taken from a queue, each already carrying
// the drain token in HOSTNAME, laid end to end: a syslog drain writes Bytes() as is
// and an HTTP drain posts it as the body.
type Batch struct {
	buf  []byte
	ends []int
	// Enqueued is when the oldest record entered the queue (monotonic nanoseconds).
	Enqueued int64
	// Written is how many bytes of Bytes() an Immediate write already sent; Deliver
	// starts after them.
	Written int
	// Notice: the first frame is the L10 notice of drops before this batch;
	// NoticeCount is the count it announces.
	Notice      bool
	NoticeCount int64
	// LostEarlier and LostNotices are set by Deliver when it learns that frames of
	// batches it had reported delivered never reached the receiver (a syslog
	// connection replaced while its kernel still held them): how many messages, and
	// the counts of the L10 notices among those frames. The runner announces them
	// with the next batch's L10.
	LostEarlier int
	LostNotices int64
	// peak is the largest batch since the last look at the buffer's size; filled
	// counts the batches since then (see Reset).
	peak, filled int
	// keepOrigin: the drain uses its records' origins (OriginUser); they are kept in
	// orig, frame i's ending at oends[i].
	keepOrigin bool
	orig       []byte
	oends      []int
}

// A batch buffer bigger than keepBytes is given back once shrinkAfter batches in a
// row needed less than a quarter of it: a drain keeps the buffer a backlog made it
// grow (up to its Limits, 256 KiB for syslog) only while it has backlogs, instead of
// for the rest of its life (issue 11 scenario 11: with hundreds of drains, their
// peak buffers were most of the router's growth over an hour).
const (
	keepBytes   = 8 << 10
	shrinkAfter = 64
)

// Len returns the number of frames.
func (b *Batch) Len() int { return len(b.ends) }

// Frame returns frame i; valid until the batch is reset.
func (b *Batch) Frame(i int) []byte {
	return b.buf[b.Start(i):b.ends[i]]
}

// Start and End return the byte offsets of frame i in Bytes().
func (b *Batch) Start(i int) int {
	if i == 0 {
		return 0
	}
	return b.ends[i-1]
}

// End returns the offset just past frame i.
func (b *Batch) End(i int) int { return b.ends[i] }

// Bytes returns all frames.
func (b *Batch) Bytes() []byte { return b.buf }

// Size returns the total frame bytes.
func (b *Batch) Size() int { return len(b.buf) }

// AddRecord frames a drain record (message.AppendWire) with host and appends it.
func (b *Batch) AddRecord(wrec []byte, host string) {
	b.buf = message.AppendFrameHost(b.buf, wrec, host)
	b.ends = append(b.ends, len(b.buf))
	if b.keepOrigin {
		b.orig = append(b.orig, message.WireOrigin(wrec)...)
		b.oends = append(b.oends, len(b.orig))
	}
}

// KeepOrigins makes the batch keep each record's origin (see Origin); the runner
// sets it for an OriginUser's batches.
func (b *Batch) KeepOrigins() { b.keepOrigin = true }

// Origin returns frame i's origin (message.AppendOrigin's encoding: the pod and
// node of the collector that sent it), or nil when unknown or not kept.
func (b *Batch) Origin(i int) []byte {
	if !b.keepOrigin || i >= len(b.oends) {
		return nil
	}
	start := 0
	if i > 0 {
		start = b.oends[i-1]
	}
	return b.orig[start:b.oends[i]]
}

// Reset empties the batch, keeping its memory unless the recent batches needed far
// less of it.
func (b *Batch) Reset() {
	if len(b.ends) > 0 {
		b.peak = max(b.peak, len(b.buf))
		b.filled++
		if b.filled >= shrinkAfter {
			if cap(b.buf) > keepBytes && b.peak < cap(b.buf)/4 {
				b.buf, b.ends, b.orig, b.oends = nil, nil, nil, nil
			}
			b.peak, b.filled = 0, 0
		}
	}
	b.buf, b.ends, b.Enqueued, b.Written, b.Notice, b.NoticeCount = b.buf[:0], b.ends[:0], 0, 0, false, 0
	b.LostEarlier, b.LostNotices = 0, 0
	b.orig, b.oends = b.orig[:0], b.oends[:0]
}

// Release gives back a buffer bigger than keepBytes: for a drain idle so long that
// its connection was closed.
func (b *Batch) Release() {
	if cap(b.buf) > keepBytes {
		b.buf, b.ends, b.orig, b.oends, b.peak, b.filled = nil, nil, nil, nil, 0, 0
	}
	b.Reset()
}

// ErrUnsent marks an error of a Deliver that ended (its ctx ended) before any byte
// of the batch left the process: no receiver can have any of it, so the batch may
// be handed to another runner of the same drain (Runner.Handover) without a line
// being delivered twice.
var ErrUnsent = errors.New("batch not sent")

// ErrClosed is returned by a drain used after Close.
var ErrClosed = errors.New("drain closed")
