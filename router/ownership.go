package router

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/owner"
	"github.com/kubeplex/kubeplex/router/session"
)

// ownership works out which drains this replica owns (--drain-owners K): the K
// replicas of the router's members (the peers it discovers for log sessions, and
// itself) that rendezvous hashing picks for the drain's ID. It is the first step of
// the design in docs/scaling.md ("Drain connections as replicas grow"): it reports
// ownership (GET /ownership on the admin port, metrics) and does not yet change
// delivery, because forwarding a non-owner's lines to an owner is not built; every
// replica still delivers every drain it receives lines for.
type ownership struct {
	k     int
	self  string
	peers session.Peers
	d     *dispatch.Dispatcher

	mu      sync.Mutex
	set     *owner.Set
	version string
	// drains maps every drain of the last table looked at to whether this replica
	// owns it; owned counts the true ones.
	drains map[string]bool
	owned  int
	moves  prometheus.Counter
}

// ownershipEvery is how often the member list is looked at: the EndpointSlice
// informer keeps it current, so a look is a cheap list.
const ownershipEvery = time.Second

func newOwnership(k int, self string, peers session.Peers, d *dispatch.Dispatcher, reg prometheus.Registerer) *ownership {
	o := &ownership{k: k, self: self, peers: peers, d: d, drains: map[string]bool{},
		moves: prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeplex_router_drain_ownership_moves_total",
			Help: "Drains that became or stopped being owned by this replica while staying in the table (--drain-owners)."})}
	reg.MustRegister(o.moves,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubeplex_router_drain_owner_members",
			Help: "Router replicas the drain owners are chosen from, this one included (--drain-owners)."},
			func() float64 { o.mu.Lock(); defer o.mu.Unlock(); return float64(len(o.set.Members())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kubeplex_router_drains_owned",
			Help: "Drains of the table this replica is an owner of (--drain-owners)."},
			func() float64 { o.mu.Lock(); defer o.mu.Unlock(); return float64(o.owned) }))
	o.set = owner.New(self, nil, k)
	return o
}

// run refreshes the owned set until ctx ends.
func (o *ownership) run(ctx context.Context) {
	t := time.NewTicker(ownershipEvery)
	defer t.Stop()
	for {
		o.refresh()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refresh recomputes the owned drains when the members or the table changed.
func (o *ownership) refresh() {
	listed := o.peers.Peers()
	peers := make([]string, 0, len(listed)) // a copy: StaticPeers hands out the flag's slice
	for _, p := range listed {
		peers = append(peers, strings.TrimRight(p, "/")) // as selfURL trims --self-url
	}
	members := owner.New(o.self, peers, o.k)
	version := o.d.Version()
	o.mu.Lock()
	defer o.mu.Unlock()
	if version == o.version && slices.Equal(members.Members(), o.set.Members()) {
		return
	}
	ids := o.d.DrainIDs()
	drains := make(map[string]bool, len(ids))
	owned, moved := 0, 0
	for _, id := range ids {
		mine := members.Owns(id)
		drains[id] = mine
		if mine {
			owned++
		}
		if was, known := o.drains[id]; known && was != mine {
			moved++
		}
	}
	o.moves.Add(float64(moved))
	o.set, o.version, o.drains, o.owned = members, version, drains, owned
}

// OwnershipReport is what GET /ownership (admin port, --drain-owners) answers.
type OwnershipReport struct {
	Self    string   `json:"self"`
	Members []string `json:"members"`
	Owners  int      `json:"owners"`
	Version string   `json:"version"`
	Owned   []string `json:"owned"`
}

func (o *ownership) serveHTTP(w http.ResponseWriter, _ *http.Request) {
	o.mu.Lock()
	rep := OwnershipReport{Self: o.self, Members: o.set.Members(), Owners: o.set.K(), Version: o.version,
		Owned: make([]string, 0, o.owned)}
	for id, mine := range o.drains {
		if mine {
			rep.Owned = append(rep.Owned, id)
		}
	}
	o.mu.Unlock()
	slices.Sort(rep.Owned)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}
