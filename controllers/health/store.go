// Package health merges the routers' GET /status reports (routing.RouterStatus) into
// one view per drain, which the LogDrain reconciler writes into status.
//
// Router counters are cumulative since the router process started. The store turns
// them into increases: per router incarnation (name + start time) it remembers the
// last value and adds only what grew, so router restarts and replicas coming and
// going neither lose nor double-count deliveries.
package health

import (
	"maps"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// Summary is the merged health of one drain.
type Summary struct {
	// Reported: at least one router currently carries the drain.
	Reported bool
	// Delivered and Dropped are the increases seen since this manager started.
	Delivered, Dropped int64
	// BaselineDelivered and BaselineDropped are what routers older than this manager
	// had counted when first seen: status may hold (part of) it already, from the
	// previous leader, or none of it, for a drain made since. The reconciler takes
	// the larger of status and baseline, so neither case loses or doubles counts.
	BaselineDelivered, BaselineDropped int64
	LastSuccess                        *time.Time
	// LastError is the newest error, redacted again here (defence in depth).
	LastError     string
	LastErrorTime *time.Time
}

// State is the part of a summary whose change is a state change: it is written to
// status at once, while counters wait for the status interval.
type State int

// States of delivery, in the order of the Delivering condition's meaning.
const (
	StateNoReport  State = iota // no router reports the drain
	StateNoTraffic              // carried, nothing delivered or failed yet
	StateDelivered              // the newest event is a success
	StateFailing                // the newest event is an error
)

// State classifies the summary.
func (s Summary) State() State {
	switch {
	case !s.Reported:
		return StateNoReport
	case s.LastErrorTime != nil && (s.LastSuccess == nil || s.LastErrorTime.After(*s.LastSuccess)):
		return StateFailing
	case s.LastSuccess != nil:
		return StateDelivered
	default:
		return StateNoTraffic
	}
}

type incarnation struct {
	started time.Time
	last    map[string]routing.DrainStatus
}

// Store holds the merged view. It is safe for concurrent use.
type Store struct {
	// Since is when the manager started: a router first seen with an older start time
	// is taken as a baseline (its counts may already be in status from before a
	// manager restart); one started later contributes everything it reports.
	Since time.Time
	// NotifyInterval bounds how often a drain whose counters move (but whose state
	// does not) is reported as changed.
	NotifyInterval time.Duration

	mu      sync.Mutex
	routers map[string]*incarnation // by router name
	current map[string]map[string]routing.DrainStatus
	// running is, per router of the last round, the table drain IDs it reported
	// (a namespace-wide drain's instances, drain@app, as they are) and their LogDrain
	// IDs: RunEverywhere asks about one app's instance.
	running  map[string]map[string]bool
	acc      map[string]*Summary // by drain ID
	notified map[string]notice
	rounds   int // poll rounds folded in
}

type notice struct {
	at    time.Time
	state State
	sum   Summary
}

// NewStore returns an empty store.
func NewStore(since time.Time, notifyInterval time.Duration) *Store {
	return &Store{Since: since, NotifyInterval: notifyInterval,
		routers: map[string]*incarnation{}, current: map[string]map[string]routing.DrainStatus{},
		acc: map[string]*Summary{}, notified: map[string]notice{}}
}

// Update folds one poll round into the store: reports from every router that answered.
// Routers missing from the round no longer count as carrying their drains. It returns
// the IDs of drains whose state changed, or whose counters changed and were last
// reported at least NotifyInterval ago.
func (s *Store) Update(now time.Time, reports []routing.RouterStatus) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := map[string]map[string]routing.DrainStatus{}
	running := map[string]map[string]bool{}
	for _, rep := range reports {
		ids := make(map[string]bool, len(rep.Drains))
		for id := range rep.Drains {
			ids[id], ids[routes.DrainID(id)] = true, true
		}
		running[rep.Router] = ids
		inc := s.routers[rep.Router]
		fresh := inc == nil || !inc.started.Equal(rep.Started)
		baseline := inc == nil && rep.Started.Before(s.Since)
		if fresh {
			inc = &incarnation{started: rep.Started, last: map[string]routing.DrainStatus{}}
			s.routers[rep.Router] = inc
		}
		carried := make(map[string]routing.DrainStatus, len(rep.Drains))
		for id, ds := range rep.Drains {
			// A namespace-wide drain is one table drain per app it covers; its
			// instances' counts add up to the LogDrain's. Deltas stay per instance.
			drainID := routes.DrainID(id)
			carried[drainID] = ds
			a := s.acc[drainID]
			if a == nil {
				a = &Summary{}
				s.acc[drainID] = a
			}
			prev, seen := inc.last[id]
			if baseline {
				a.BaselineDelivered += max(ds.Delivered, 0)
				a.BaselineDropped += max(ds.Dropped, 0)
			} else {
				a.Delivered += grow(prev.Delivered, ds.Delivered, seen)
				a.Dropped += grow(prev.Dropped, ds.Dropped, seen)
			}
			inc.last[id] = ds
			if ds.LastSuccess != nil && (a.LastSuccess == nil || ds.LastSuccess.After(*a.LastSuccess)) {
				t := ds.LastSuccess.UTC()
				a.LastSuccess = &t
			}
			if ds.LastError != "" && ds.LastErrorTime != nil && (a.LastErrorTime == nil || ds.LastErrorTime.After(*a.LastErrorTime)) {
				t := ds.LastErrorTime.UTC()
				a.LastErrorTime = &t
				a.LastError = Redact(ds.LastError)
			}
		}
		current[rep.Router] = carried
	}
	s.current = current
	s.running = running
	s.rounds++

	var changed []string
	for id := range s.acc {
		sum := s.summaryLocked(id)
		if n, ok := s.notified[id]; ok {
			if equalSummary(n.sum, sum) {
				continue
			}
			if n.state == sum.State() && now.Sub(n.at) < s.NotifyInterval {
				continue // counters only: wait for the interval
			}
		}
		s.notified[id] = notice{at: now, state: sum.State(), sum: sum}
		changed = append(changed, id)
	}
	return changed
}

func grow(prev, cur int64, seen bool) int64 {
	if !seen || cur < prev {
		// A new drain on this router, or a counter that went back (the router reset
		// it): everything it reports now is new.
		return max(cur, 0)
	}
	return cur - prev
}

func equalSummary(a, b Summary) bool {
	return a.Reported == b.Reported && a.Delivered == b.Delivered && a.Dropped == b.Dropped &&
		a.BaselineDelivered == b.BaselineDelivered && a.BaselineDropped == b.BaselineDropped &&
		a.LastError == b.LastError && eqTime(a.LastSuccess, b.LastSuccess) && eqTime(a.LastErrorTime, b.LastErrorTime)
}

func eqTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// Forget drops what the store accumulated for a drain that was deleted, so the
// store does not grow with every drain ever seen and a drain created again under the
// same name starts from zero. Routers still carrying it add only what they deliver
// from now on.
func (s *Store) Forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.acc, id)
	delete(s.notified, id)
}

// Get returns the merged summary of a drain.
func (s *Store) Get(id string) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.summaryLocked(id)
}

func (s *Store) summaryLocked(id string) Summary {
	var sum Summary
	if a := s.acc[id]; a != nil {
		sum = *a
	}
	for _, drains := range s.current {
		if _, ok := drains[id]; ok {
			sum.Reported = true
			break
		}
	}
	return sum
}

// RunEverywhere reports whether every router that answered the last round runs the
// drain (lists it in its /status). Before the first round it is false; after a round
// no router answered it is true: there is nothing to wait for that could be seen.
func (s *Store) RunEverywhere(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.running) == 0 {
		return s.rounds > 0
	}
	for _, ids := range s.running {
		if !ids[id] {
			return false
		}
	}
	return true
}

// Routers returns the names of the routers in the last round.
func (s *Store) Routers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.current))
	for k := range maps.Keys(s.current) {
		out = append(out, k)
	}
	return out
}

var (
	userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)
	tokenRE    = regexp.MustCompile(`\bt\.[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`)
	authRE     = regexp.MustCompile(`(?i)(authorization:?\s*(basic|bearer)\s+)\S+`)
)

// maxErrorLen matches LogDrain status.lastError's schema limit.
const maxErrorLen = 1024

// Redact removes URL userinfo, ingest tokens and Authorization values from an error
// text and bounds its length. Routers redact already; the manager does not trust
// that, since the text ends up in status that namespace users read.
func Redact(s string) string {
	s = userinfoRE.ReplaceAllString(s, "${1}REDACTED@")
	s = tokenRE.ReplaceAllString(s, "t.REDACTED")
	s = authRE.ReplaceAllString(s, "${1}REDACTED")
	if len(s) > maxErrorLen {
		s = strings.ToValidUTF8(s[:maxErrorLen-3], "") + "..."
	}
	return s
}
