// Package backoff is the one retry schedule every kubeplex retry loop uses (syslog and
// HTTP drains, the collector's shipper and relay, the routes watch): capped
// exponential growth with jitter. Without jitter, every collector of a cluster whose
// router restarted would retry at the same instants and knock it over again; with
// it, retries of one step spread over half the step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a retry schedule. It is not safe for concurrent use: each loop owns one.
type Backoff struct {
	// Min is the first wait, Max the cap.
	Min, Max time.Duration
	// Jitter is the share of each wait that is random: the wait is drawn uniformly
	// from [(1-Jitter)·d, d] where d is the exponential step. 0 means the default
	// 0.5; negative turns jitter off (tests of exact schedules only).
	Jitter float64
	// Rand returns a number in [0, 1); nil means math/rand/v2 (seeded per process).
	Rand func() float64

	step time.Duration
}

// New returns a schedule from minimum to maximum with the default jitter.
func New(minimum, maximum time.Duration) *Backoff {
	return &Backoff{Min: minimum, Max: maximum}
}

// Next returns the wait before the next attempt and advances the schedule.
func (b *Backoff) Next() time.Duration {
	if b.Min <= 0 {
		b.Min = 100 * time.Millisecond
	}
	if b.Max < b.Min {
		b.Max = b.Min
	}
	if b.step < b.Min {
		b.step = b.Min
	}
	d := b.step
	if b.step < b.Max {
		b.step = min(2*b.step, b.Max)
	}
	j := b.Jitter
	if j == 0 {
		j = 0.5
	}
	if j < 0 {
		return d
	}
	j = min(j, 1)
	r := b.Rand
	if r == nil {
		r = rand.Float64
	}
	return d - time.Duration(j*r()*float64(d))
}

// Reset starts the schedule over after a success.
func (b *Backoff) Reset() { b.step = 0 }

// Failing reports whether the schedule has advanced since the last Reset.
func (b *Backoff) Failing() bool { return b.step != 0 }

// AtLeast returns max(d, Next()): the receiver asked for d (Retry-After), and the
// schedule still advances so a receiver asking for 0 s is not hammered.
func (b *Backoff) AtLeast(d time.Duration) time.Duration {
	return max(d, b.Next())
}

// Sleep waits d or until ctx ends; it reports whether the whole wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Wait sleeps for Next() or until ctx ends; it reports whether the whole wait passed.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
