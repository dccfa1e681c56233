package router

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/forward"
	"github.com/kubeplex/kubeplex/router/owner"
	"github.com/kubeplex/kubeplex/router/session"
)

// ownership works out which drains this replica owns (--drain-owners K): the K
// replicas of the router's members (the peers it discovers for log sessions that
// answer their readiness probe, and itself) that rendezvous hashing picks for the
// drain's ID. The dispatcher asks it (dispatch.Owners) whether to deliver a drain
// or to forward its lines to an owner (router/forward); when the members change,
// Reown moves the drains that changed hands. It is reported on GET /ownership
// (admin port) and in metrics. docs/scaling.md ("Drain ownership") has the
// ordering and loss semantics.
type ownership struct {
	k     int
	self  string
	peers session.Peers
	d     *dispatch.Dispatcher
	fwd   *forward.Client
	log   *slog.Logger
	// probe, when set, checks each listed peer's /readyz every ownershipEvery; a
	// peer is a member once it answered ready and until it failed deadAfter probes
	// in a row. Nil: every listed peer is a member (tests).
	probe *http.Client
	// probeMu guards fails, which only the run loop writes.
	probeMu sync.Mutex
	fails   map[string]int

	mu      sync.Mutex
	set     *owner.Set
	version string
	// drains maps every drain of the last table looked at to whether this replica
	// owns it; owned counts the true ones.
	drains map[string]bool
	owned  int
	// shown is the member list /ownership reports: the set's, once the drains
	// have been moved to it (Reown), so a caller that sees the members may rely on
	// delivery following them.
	shown []string
	moves prometheus.Counter
}

// ownershipEvery is how often the member list is looked at and the peers probed:
// the EndpointSlice informer keeps the list current, so a look is a cheap list.
const ownershipEvery = time.Second

// deadAfter failed probes in a row take a peer out of the members: one or two slow
// answers on a loaded machine are not enough, and a replica that died is out within
// about three seconds (its port refuses at once). A probe waits probeTimeout.
const (
	deadAfter    = 3
	probeTimeout = 2 * time.Second
)

func newOwnership(k int, self string, peers session.Peers, d *dispatch.Dispatcher, reg prometheus.Registerer) *ownership {
	o := &ownership{k: k, self: self, peers: peers, d: d, drains: map[string]bool{}, log: slog.New(slog.DiscardHandler),
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
	o.shown = o.set.Members()
	return o
}

// start wires the ownership to the dispatcher and the peer calls' transport and
// starts its loop (before the first table is applied).
func (o *ownership) start(ctx context.Context, d *dispatch.Dispatcher, sess *session.Handler, log *slog.Logger) {
	tr := sess.PeerTransport()
	// Every forwarding drain of this replica shares these connections to the owners.
	tr.MaxIdleConnsPerHost = 64
	o.d, o.log = d, log
	o.fwd = &forward.Client{Self: o.self, Owners: o.ownersOf, Keys: sess.PeerKeys,
		HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	o.probe = &http.Client{Transport: tr, Timeout: probeTimeout}
	go o.run(ctx)
}

// Owns reports whether this replica delivers drain id (dispatch.Owners).
func (o *ownership) Owns(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.set.Owns(id)
}

// Forwarder returns the drain that forwards cfg's lines to its owners.
func (o *ownership) Forwarder(cfg *drain.Config, env drain.Env, origins bool) drain.Drain {
	return o.fwd.NewDrain(cfg, env, origins)
}

// ownersOf returns drain id's owners, first choice first.
func (o *ownership) ownersOf(id string) []string {
	o.mu.Lock()
	set := o.set
	o.mu.Unlock()
	return set.Owners(id)
}

// run probes the peers and refreshes the owned set until ctx ends; when the
// members changed, the drains that changed hands move (Dispatcher.Reown).
func (o *ownership) run(ctx context.Context) {
	t := time.NewTicker(ownershipEvery)
	defer t.Stop()
	for {
		o.probePeers(ctx)
		if o.refresh() {
			n := o.d.Reown()
			o.mu.Lock()
			o.shown = o.set.Members()
			members := o.shown
			o.mu.Unlock()
			o.log.Info("drain owners changed", "members", members, "drains moved here or away", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// listed returns the peers as members are named: without a trailing slash, as
// selfURL trims --self-url.
func (o *ownership) listed() []string {
	listed := o.peers.Peers()
	peers := make([]string, 0, len(listed)) // a copy: StaticPeers hands out the flag's slice
	for _, p := range listed {
		peers = append(peers, strings.TrimRight(p, "/"))
	}
	return peers
}

// probePeers asks every listed peer's /readyz once, all at a time.
func (o *ownership) probePeers(ctx context.Context) {
	if o.probe == nil {
		return
	}
	peers := o.listed()
	ok := make([]bool, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(pctx, http.MethodGet, p+"/readyz", nil)
			if err != nil {
				return
			}
			resp, err := o.probe.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close() // read-only body
			ok[i] = resp.StatusCode == http.StatusOK
		})
	}
	wg.Wait()
	o.probeMu.Lock()
	defer o.probeMu.Unlock()
	fails := make(map[string]int, len(peers))
	for i, p := range peers {
		n, known := o.fails[p]
		switch {
		case ok[i]:
			n = 0
		case !known:
			n = deadAfter // never seen ready: not a member yet
		default:
			n++
		}
		fails[p] = n
	}
	o.fails = fails
}

// members returns the listed peers that count as members (see probe).
func (o *ownership) members() []string {
	peers := o.listed()
	if o.probe == nil {
		return peers
	}
	o.probeMu.Lock()
	defer o.probeMu.Unlock()
	live := peers[:0]
	for _, p := range peers {
		if n, known := o.fails[p]; known && n < deadAfter {
			live = append(live, p)
		}
	}
	return live
}

// refresh recomputes the owned drains when the members or the table changed, and
// reports whether the members changed.
func (o *ownership) refresh() (membersChanged bool) {
	members := owner.New(o.self, o.members(), o.k)
	version := o.d.Version()
	o.mu.Lock()
	defer o.mu.Unlock()
	membersChanged = !slices.Equal(members.Members(), o.set.Members())
	if version == o.version && !membersChanged {
		return false
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
	return membersChanged
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
	rep := OwnershipReport{Self: o.self, Members: slices.Clone(o.shown), Owners: o.set.K(), Version: o.version,
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
