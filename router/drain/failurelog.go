package drain

import (
	"log/slog"
	"time"
)

// FailureLog logs a streak of failures without flooding: the first failure at once,
// then at most one line per Every with how many were not logged, and one line when
// the streak ends. A drain that refuses every batch otherwise writes a WARN line per
// attempt, thousands a second (issue 11, hole 7). Not safe for concurrent use: each
// runner or sink owns one.
type FailureLog struct {
	// Every is the least time between two lines of one streak [1 min].
	Every time.Duration

	failing    bool
	last       time.Time
	suppressed int
}

// Failed records one failure and logs it if the limit allows.
func (f *FailureLog) Failed(log *slog.Logger, msg string, args ...any) {
	every := f.Every
	if every <= 0 {
		every = time.Minute
	}
	now := time.Now()
	if f.failing && now.Sub(f.last) < every {
		f.suppressed++
		return
	}
	if f.suppressed > 0 {
		args = append(args, "suppressed", f.suppressed)
	}
	f.failing, f.last, f.suppressed = true, now, 0
	log.Warn(msg, args...) //nolint:sloglint // msg is the caller's constant message
}

// Succeeded ends a streak, saying so once.
func (f *FailureLog) Succeeded(log *slog.Logger, msg string, args ...any) {
	if !f.failing {
		return
	}
	if f.suppressed > 0 {
		args = append(args, "suppressed", f.suppressed)
	}
	f.failing, f.suppressed = false, 0
	log.Info(msg, args...) //nolint:sloglint // msg is the caller's constant message
}
