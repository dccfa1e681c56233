package health

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func at(sec int) *time.Time { t := t0.Add(time.Duration(sec) * time.Second); return &t }

func report(router string, started time.Time, drains map[string]routing.DrainStatus) routing.RouterStatus {
	return routing.RouterStatus{Router: router, Started: started, Version: "v1", Drains: drains}
}

// TestCountersAcrossReplicasAndRestarts: counts are summed over replicas, a router
// restart (new start time, counters from zero) loses nothing, and a router that
// disappears keeps what it contributed.
func TestCountersAcrossReplicasAndRestarts(t *testing.T) {
	s := NewStore(t0, 0)
	startA, startB := t0.Add(time.Second), t0.Add(2*time.Second)
	steps := []struct {
		name               string
		reports            []routing.RouterStatus
		delivered, dropped int64
		reported           bool
	}{
		{"first reports", []routing.RouterStatus{
			report("a", startA, map[string]routing.DrainStatus{"ns/d": {Delivered: 10, Dropped: 1}}),
			report("b", startB, map[string]routing.DrainStatus{"ns/d": {Delivered: 5}}),
		}, 15, 1, true},
		{"both grow", []routing.RouterStatus{
			report("a", startA, map[string]routing.DrainStatus{"ns/d": {Delivered: 12, Dropped: 1}}),
			report("b", startB, map[string]routing.DrainStatus{"ns/d": {Delivered: 9, Dropped: 2}}),
		}, 21, 3, true},
		{"a restarted", []routing.RouterStatus{
			report("a", t0.Add(time.Minute), map[string]routing.DrainStatus{"ns/d": {Delivered: 3}}),
			report("b", startB, map[string]routing.DrainStatus{"ns/d": {Delivered: 9, Dropped: 2}}),
		}, 24, 3, true},
		{"b gone", []routing.RouterStatus{
			report("a", t0.Add(time.Minute), map[string]routing.DrainStatus{"ns/d": {Delivered: 4}}),
		}, 25, 3, true},
		{"no routers", nil, 25, 3, false},
		{"b back, same process, grew meanwhile", []routing.RouterStatus{
			report("b", startB, map[string]routing.DrainStatus{"ns/d": {Delivered: 19, Dropped: 2}}),
		}, 35, 3, true},
	}
	for _, st := range steps {
		s.Update(t0, st.reports)
		got := s.Get("ns/d")
		if got.Delivered != st.delivered || got.Dropped != st.dropped || got.Reported != st.reported {
			t.Fatalf("%s: delivered %d dropped %d reported %v, want %d %d %v", st.name,
				got.Delivered, got.Dropped, got.Reported, st.delivered, st.dropped, st.reported)
		}
	}
}

// TestBaselineAfterManagerRestart: a router that was running before the manager
// started may have had its counts written to status already; only growth counts.
func TestBaselineAfterManagerRestart(t *testing.T) {
	s := NewStore(t0, 0)
	old := t0.Add(-time.Hour)
	s.Update(t0, []routing.RouterStatus{report("a", old, map[string]routing.DrainStatus{"ns/d": {Delivered: 1000}})})
	if got := s.Get("ns/d"); got.Delivered != 0 || got.BaselineDelivered != 1000 || !got.Reported {
		t.Fatalf("first sight of an older router: %+v, want 0 delivered since, 1000 baseline, reported", got)
	}
	s.Update(t0, []routing.RouterStatus{report("a", old, map[string]routing.DrainStatus{"ns/d": {Delivered: 1007}})})
	if got := s.Get("ns/d"); got.Delivered != 7 || got.BaselineDelivered != 1000 {
		t.Fatalf("growth after baseline: %d (baseline %d), want 7 (1000)", got.Delivered, got.BaselineDelivered)
	}
}

func TestStateAndLastError(t *testing.T) {
	tests := []struct {
		name  string
		ds    *routing.DrainStatus
		state State
		err   string
	}{
		{"not reported", nil, StateNoReport, ""},
		{"idle", &routing.DrainStatus{}, StateNoTraffic, ""},
		{"delivering", &routing.DrainStatus{Delivered: 3, LastSuccess: at(10)}, StateDelivered, ""},
		{"error after success", &routing.DrainStatus{LastSuccess: at(10), LastError: "dial tcp: refused", LastErrorTime: at(20)}, StateFailing, "dial tcp: refused"},
		{"success after error", &routing.DrainStatus{LastSuccess: at(30), LastError: "dial tcp: refused", LastErrorTime: at(20)}, StateDelivered, "dial tcp: refused"},
		{"only errors", &routing.DrainStatus{LastError: "x509: unknown authority", LastErrorTime: at(5)}, StateFailing, "x509: unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStore(t0, 0)
			var reps []routing.RouterStatus
			if tt.ds != nil {
				reps = append(reps, report("a", t0, map[string]routing.DrainStatus{"ns/d": *tt.ds}))
			}
			s.Update(t0, reps)
			got := s.Get("ns/d")
			if got.State() != tt.state || got.LastError != tt.err {
				t.Errorf("state %v error %q, want %v %q", got.State(), got.LastError, tt.state, tt.err)
			}
		})
	}
}

// TestNewestErrorWins: across routers the newest error is the one shown.
func TestNewestErrorWins(t *testing.T) {
	s := NewStore(t0, 0)
	s.Update(t0, []routing.RouterStatus{
		report("a", t0, map[string]routing.DrainStatus{"ns/d": {LastError: "older", LastErrorTime: at(5)}}),
		report("b", t0, map[string]routing.DrainStatus{"ns/d": {LastError: "newer", LastErrorTime: at(9), LastSuccess: at(7)}}),
	})
	if got := s.Get("ns/d"); got.LastError != "newer" || !got.LastSuccess.Equal(*at(7)) {
		t.Errorf("got %+v", got)
	}
}

// TestNotifyThrottle: a state change is announced at once; counter changes at most
// once per interval.
func TestNotifyThrottle(t *testing.T) {
	s := NewStore(t0, 30*time.Second)
	rep := func(n int64, errAt *time.Time) []routing.RouterStatus {
		ds := routing.DrainStatus{Delivered: n, LastSuccess: at(1)}
		if errAt != nil {
			ds.LastError, ds.LastErrorTime = "boom", errAt
		}
		return []routing.RouterStatus{report("a", t0, map[string]routing.DrainStatus{"ns/d": ds})}
	}
	steps := []struct {
		sec    int
		n      int64
		errAt  *time.Time
		notify bool
	}{
		{0, 1, nil, true},       // new drain
		{1, 2, nil, false},      // counters only, too soon
		{10, 3, nil, false},     // still too soon
		{15, 3, at(15), true},   // state change: failing
		{16, 4, at(15), false},  // counters only
		{46, 5, at(15), true},   // interval passed
		{47, 5, at(15), false},  // nothing changed
		{200, 5, at(15), false}, // nothing changed, however long
	}
	for _, st := range steps {
		changed := s.Update(t0.Add(time.Duration(st.sec)*time.Second), rep(st.n, st.errAt))
		if got := slices.Contains(changed, "ns/d"); got != st.notify {
			t.Fatalf("t=%ds: notified %v, want %v", st.sec, got, st.notify)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{`Post "https://user:hunter2@logs.example.com/x": EOF`, `Post "https://REDACTED@logs.example.com/x": EOF`},
		{"syslog+tls://a:b@h:6514 refused", "syslog+tls://REDACTED@h:6514 refused"},
		{"token t.6f1c7a52-1d6e-4f6b-9d8e-2b1b7c0e9a11 rejected", "token t.REDACTED rejected"},
		{"Authorization: Basic dXNlcjpwYXNz failed", "Authorization: Basic REDACTED failed"},
		{"dial tcp 203.0.113.5:514: connection refused", "dial tcp 203.0.113.5:514: connection refused"},
		{"drain token d.0b4c1a7e-3f5d-4e2b-8a9c-7d6e5f4a3b21 is fine", "drain token d.0b4c1a7e-3f5d-4e2b-8a9c-7d6e5f4a3b21 is fine"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := strings.Repeat("é", 1000)
	if got := Redact(long); len(got) > maxErrorLen || !strings.HasSuffix(got, "...") || !utf8Valid(got) {
		t.Errorf("long error: %d bytes, valid UTF-8 %v", len(got), utf8Valid(got))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestPollerAgainstRouters: the poller reads real HTTP /status endpoints, survives
// one that is down or answers garbage, and notifies the drains that changed.
func TestPollerAgainstRouters(t *testing.T) {
	var mu sync.Mutex
	delivered := int64(5)
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(routing.RouterStatus{Router: "r1", Started: t0, Version: "v1",
			Drains: map[string]routing.DrainStatus{"ns/d": {Delivered: delivered, LastSuccess: at(1)}}})
	}))
	defer good.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{not json")) }))
	defer garbage.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/status"
	down.Close()

	var notified [][]string
	p := &Poller{
		Store: NewStore(t0, 0), Interval: time.Hour, Log: logr.Discard(),
		Discover: func(context.Context) ([]string, error) {
			return []string{good.URL + "/status", garbage.URL + "/status", downURL}, nil
		},
		Notify: func(ids []string) { notified = append(notified, ids) },
	}
	p.Poll(context.Background())
	if got := p.Store.Get("ns/d"); got.Delivered != 5 || got.State() != StateDelivered {
		t.Fatalf("after first poll: %+v", got)
	}
	if len(notified) != 1 || !slices.Equal(notified[0], []string{"ns/d"}) {
		t.Fatalf("notified %v", notified)
	}
	p.Poll(context.Background())
	if len(notified) != 1 {
		t.Fatalf("unchanged poll notified: %v", notified)
	}
	mu.Lock()
	delivered = 8
	mu.Unlock()
	p.Poll(context.Background())
	if got := p.Store.Get("ns/d"); got.Delivered != 8 || len(notified) != 2 {
		t.Fatalf("after growth: %+v, notified %v", got, notified)
	}
	if rs := p.Store.Routers(); !slices.Equal(rs, []string{"r1"}) {
		t.Errorf("routers %v, want [r1]", rs)
	}
}

// TestForget: a deleted drain's accumulated counts go; a router still carrying it
// adds only what it delivers afterwards, and other drains keep theirs.
func TestForget(t *testing.T) {
	s := NewStore(t0.Add(-time.Hour), 0)
	started := t0
	s.Update(t0, []routing.RouterStatus{report("a", started, map[string]routing.DrainStatus{"ns/gone": {Delivered: 10}, "ns/kept": {Delivered: 4}})})
	s.Forget("ns/gone")
	if got := s.Get("ns/gone").Delivered; got != 0 {
		t.Fatalf("forgotten drain still counts %d", got)
	}
	s.Update(t0, []routing.RouterStatus{report("a", started, map[string]routing.DrainStatus{"ns/gone": {Delivered: 12}, "ns/kept": {Delivered: 4}})})
	if got := s.Get("ns/gone").Delivered; got != 2 {
		t.Errorf("after forgetting, a router delivering 2 more gives %d, want 2", got)
	}
	if got := s.Get("ns/kept").Delivered; got != 4 {
		t.Errorf("kept drain %d, want 4", got)
	}
}

// TestBaselineOfANewDrain: a drain made after the manager started, on a router that
// is older than the manager, has no counts in status yet; its first report's counts
// are all the baseline there is (the reconciler takes the larger of status and it).
func TestBaselineOfANewDrain(t *testing.T) {
	s := NewStore(t0, 0)
	old := t0.Add(-time.Hour)
	s.Update(t0, []routing.RouterStatus{
		report("a", old, map[string]routing.DrainStatus{"ns/new": {Delivered: 300, Dropped: 2}}),
		report("b", old, map[string]routing.DrainStatus{"ns/new": {Delivered: 5}}),
	})
	got := s.Get("ns/new")
	if got.BaselineDelivered != 305 || got.BaselineDropped != 2 || got.Delivered != 0 {
		t.Fatalf("baseline %d/%d, since %d; want 305/2, 0", got.BaselineDelivered, got.BaselineDropped, got.Delivered)
	}
}

// TestNamespaceDrainInstances: a namespace-wide drain is one table drain per app
// ("ns/d@web", "ns/d@worker"); their counts add up to the LogDrain's, each instance's
// increases counted on its own, and the changed ID is the LogDrain's.
func TestNamespaceDrainInstances(t *testing.T) {
	s := NewStore(t0, 0)
	start := t0.Add(time.Second)
	changed := s.Update(t0, []routing.RouterStatus{report("a", start, map[string]routing.DrainStatus{
		"ns/d@web": {Delivered: 10, LastSuccess: at(5)}, "ns/d@worker": {Delivered: 3, Dropped: 1}})})
	if !slices.Equal(changed, []string{"ns/d"}) {
		t.Errorf("changed %v, want [ns/d]", changed)
	}
	s.Update(t0, []routing.RouterStatus{report("a", start, map[string]routing.DrainStatus{
		"ns/d@web": {Delivered: 12, LastSuccess: at(6)}, "ns/d@worker": {Delivered: 3, Dropped: 1}})})
	if got := s.Get("ns/d"); got.Delivered != 15 || got.Dropped != 1 || !got.Reported || !got.LastSuccess.Equal(*at(6)) {
		t.Errorf("summary %+v, want 15 delivered, 1 dropped, reported, last success at 6s", got)
	}
	if got := s.Get("ns/d@web"); got.Reported || got.Delivered != 0 {
		t.Errorf("an instance has its own summary: %+v", got)
	}
}

// TestRunEverywhere: a drain runs everywhere once every router that answered lists it;
// a namespace-wide drain's instance (drain@app) is asked about by itself, so a new
// app's instance is not taken as running because another app's instance is. (Asked by
// instance ID before the fix, it was never found, and the routes controller held the
// "Drain … added" line, and every later line of that app, for AnnounceWait.)
func TestRunEverywhere(t *testing.T) {
	web, worker := routes.InstanceID("ns/all", "web"), routes.InstanceID("ns/all", "worker")
	rep := func(router string, ids ...string) routing.RouterStatus {
		r := routing.RouterStatus{Router: router, Started: t0, Drains: map[string]routing.DrainStatus{}}
		for _, id := range ids {
			r.Drains[id] = routing.DrainStatus{}
		}
		return r
	}
	for _, tc := range []struct {
		name    string
		rounds  [][]routing.RouterStatus
		id      string
		running bool
	}{
		{"before the first round", nil, "ns/d", false},
		{"a round no router answered", [][]routing.RouterStatus{{}}, "ns/d", true},
		{"every router lists it", [][]routing.RouterStatus{{rep("r0", "ns/d"), rep("r1", "ns/d")}}, "ns/d", true},
		{"one router lacks it", [][]routing.RouterStatus{{rep("r0", "ns/d"), rep("r1")}}, "ns/d", false},
		{"the router that lacked it left", [][]routing.RouterStatus{{rep("r0", "ns/d"), rep("r1")}, {rep("r0", "ns/d")}}, "ns/d", true},
		{"an instance everywhere", [][]routing.RouterStatus{{rep("r0", web), rep("r1", web, worker)}}, web, true},
		{"another app's instance only", [][]routing.RouterStatus{{rep("r0", web), rep("r1", web, worker)}}, worker, false},
		{"the LogDrain, by its instances", [][]routing.RouterStatus{{rep("r0", web), rep("r1", worker)}}, "ns/all", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(t0, 0)
			for i, round := range tc.rounds {
				s.Update(t0.Add(time.Duration(i)*time.Second), round)
			}
			if got := s.RunEverywhere(tc.id); got != tc.running {
				t.Errorf("RunEverywhere(%q) = %v, want %v", tc.id, got, tc.running)
			}
		})
	}
}
