package drain

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// Stats account for one drain. Invariant, once the queue is empty and nothing is in
// flight: Offered = Delivered + Forwarded + Dropped. Announced counts the drops that reached the
// destination inside an L10 notice.
type Stats struct {
	Offered   atomic.Int64
	Delivered atomic.Int64
	// Forwarded counts what a Forwarding drain handed to another replica.
	Forwarded atomic.Int64
	Dropped   atomic.Int64
	Announced atomic.Int64
	Batches   atomic.Int64
	Errors    atomic.Int64
	// ByReason counts errors by Reasons index.
	ByReason [len(Reasons)]atomic.Int64

	// forwarding: the drain's runner forwards (a Forwarding drain); its successes
	// are the hand-overs, which say nothing of the destination's health, so Status
	// leaves them out.
	forwarding atomic.Bool

	mu          sync.Mutex
	lastSuccess time.Time
	lastError   string
	lastErrorAt time.Time
}

func (s *Stats) success(t time.Time) {
	s.mu.Lock()
	s.lastSuccess = t
	s.mu.Unlock()
}

// deliveringWithin: a drain counts as delivering when its latest outcome was a
// success and that success is this recent.
const deliveringWithin = 2 * time.Second

// delivering reports whether the drain is delivering at now: its latest outcome was
// a success, less than deliveringWithin ago. A drain that never delivered, is
// failing, or is stuck on a receiver that stopped answering is not.
func (s *Stats) delivering(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.lastSuccess.IsZero() && !s.lastSuccess.Before(s.lastErrorAt) && now.Sub(s.lastSuccess) < deliveringWithin
}

// Fail records a delivery error; its text must already be free of credentials.
func (s *Stats) Fail(err error, t time.Time) {
	s.ByReason[reason(err)].Add(1)
	s.fail(err.Error(), t)
}

func (s *Stats) fail(msg string, t time.Time) {
	s.Errors.Add(1)
	s.mu.Lock()
	s.lastError, s.lastErrorAt = msg, t
	s.mu.Unlock()
}

// Status returns the health report entry.
func (s *Stats) Status(queued int) routing.DrainStatus {
	st := routing.DrainStatus{
		Delivered: s.Delivered.Load(),
		Dropped:   s.Dropped.Load(),
		Forwarded: s.Forwarded.Load(),
		Queued:    queued,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastSuccess.IsZero() && !s.forwarding.Load() {
		t := s.lastSuccess
		st.LastSuccess = &t
	}
	if s.lastError != "" {
		t := s.lastErrorAt
		st.LastError, st.LastErrorTime = s.lastError, &t
	}
	return st
}

// Reasons label delivery errors in metrics.
var Reasons = [...]string{"other", "forbidden_address", "connect", "tls", "timeout", "io", "http_429", "http_4xx", "http_5xx"}

// StatusCoder is an error carrying an HTTP status.
type StatusCoder interface{ StatusCode() int }

func reason(err error) int {
	var sc StatusCoder
	var ne net.Error
	var op *net.OpError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	switch {
	case errors.As(err, &sc):
		switch c := sc.StatusCode(); {
		case c == 429:
			return 6
		case c >= 500:
			return 8
		default:
			return 7
		}
	case errors.Is(err, ErrForbiddenAddress):
		return 1
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn):
		return 3
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return 4
	case errors.As(err, &op) && op.Op == "dial":
		return 2
	case errors.As(err, &op):
		return 5
	}
	return 0
}
