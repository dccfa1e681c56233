package drain

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// Stats account for one drain. Invariant, once the queue is empty and nothing is in
// flight: Offered = Delivered + Dropped. Announced counts the drops that reached the
// destination inside an L10 notice.
type Stats struct {
	Offered   atomic.Int64
	Delivered atomic.Int64
	Dropped   atomic.Int64
	Announced atomic.Int64
	Batches   atomic.Int64
	Errors    atomic.Int64

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

// Fail records a delivery error; msg must already be free of credentials.
func (s *Stats) Fail(msg string, t time.Time) {
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
		Queued:    queued,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastSuccess.IsZero() {
		t := s.lastSuccess
		st.LastSuccess = &t
	}
	if s.lastError != "" {
		t := s.lastErrorAt
		st.LastError, st.LastErrorTime = s.lastError, &t
	}
	return st
}
