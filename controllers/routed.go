package controllers

import (
	"context"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// RoutingView is what the routing table last stored holds for each app, published by
// the routes reconciler after each successful store and read by the LogApp
// reconciler for the Routed and HostsClaimed conditions. Only the table's writer
// knows what really went in; decoding the shards back for every app reconcile would
// cost megabytes each time.
type RoutingView struct {
	mu     sync.Mutex
	loaded bool // a table was stored (or found current) since this manager started
	apps   map[string]routedApp
	// events tells the LogApp controller which apps' entries changed; nil: nobody listens.
	events chan event.TypedGenericEvent[client.Object]
}

// routedApp is one app's part of the stored table and of what Render left out.
type routedApp struct {
	inTable   bool
	tokens    []string // SHA-256 of each token in the entry
	hosts     []string
	conflicts []string // messages of HostConflict problems
}

func (a routedApp) equal(b routedApp) bool {
	return a.inTable == b.inTable && slices.Equal(a.tokens, b.tokens) &&
		slices.Equal(a.hosts, b.hosts) && slices.Equal(a.conflicts, b.conflicts)
}

// NewRoutingView returns an empty view whose changes are sent on a channel the
// LogApp controller watches.
func NewRoutingView() *RoutingView {
	return &RoutingView{events: make(chan event.TypedGenericEvent[client.Object], 1024)}
}

// publish records the table just stored, rendered from apps, and tells the LogApp
// controller about every app whose entry changed (every app, the first time).
func (v *RoutingView) publish(ctx context.Context, apps []kubeplexv1alpha1.LogApp, res routes.Result) {
	next := make(map[string]routedApp, len(apps))
	for _, a := range res.Table.Apps {
		ra := routedApp{inTable: true, hosts: a.Hosts}
		for _, t := range a.Tokens {
			ra.tokens = append(ra.tokens, t.SHA256)
		}
		next[a.ID] = ra
	}
	for _, p := range res.Problems {
		if p.Kind != "LogApp" || p.Reason != routes.ReasonHostConflict {
			continue
		}
		id := routes.ID(p.Namespace, p.Name)
		ra := next[id]
		ra.conflicts = append(ra.conflicts, p.Message)
		next[id] = ra
	}
	v.mu.Lock()
	first := !v.loaded
	prev := v.apps
	v.apps, v.loaded = next, true
	v.mu.Unlock()
	if v.events == nil {
		return
	}
	for i := range apps {
		id := routes.ID(apps[i].Namespace, apps[i].Name)
		if !first && prev[id].equal(next[id]) {
			continue
		}
		obj := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: apps[i].Namespace, Name: apps[i].Name}}
		select {
		case v.events <- event.TypedGenericEvent[client.Object]{Object: obj}:
		case <-ctx.Done():
			return
		}
	}
}

// lookup returns the app's part of the stored table, and false if no table has been
// stored since the manager started.
func (v *RoutingView) lookup(id string) (routedApp, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.apps[id], v.loaded
}

// reconcileRouting sets Routed and HostsClaimed from the stored table: Routed only
// when the table holds the app with token (its current ingest token). Before the
// first table of this manager is stored, conditions already there are kept (a
// restart does not flap them) and missing ones start Unknown.
func (r *LogAppReconciler) reconcileRouting(app *kubeplexv1alpha1.LogApp, token string) {
	if r.View == nil {
		return
	}
	set := func(typ string, status metav1.ConditionStatus, reason, msg string) {
		setCondition(r.Recorder, app, &app.Status.Conditions, typ, status, reason, msg)
	}
	entry, loaded := r.View.lookup(routes.ID(app.Namespace, app.Name))
	if !loaded {
		for _, typ := range []string{kubeplexv1alpha1.RoutedCondition, kubeplexv1alpha1.HostsClaimedCondition} {
			if findCondition(app.Status.Conditions, typ) == nil {
				set(typ, metav1.ConditionUnknown, kubeplexv1alpha1.RoutingPendingReason, "no routing table stored since the manager started")
			}
		}
		return
	}
	if entry.inTable && slices.Contains(entry.tokens, routing.HashToken(token)) {
		set(kubeplexv1alpha1.RoutedCondition, metav1.ConditionTrue, kubeplexv1alpha1.RoutedReason,
			"the stored routing table holds the app and its current ingest token")
	} else {
		set(kubeplexv1alpha1.RoutedCondition, metav1.ConditionUnknown, kubeplexv1alpha1.RoutingPendingReason,
			"the stored routing table does not hold the app's current ingest token yet")
	}

	want := slices.Sorted(slices.Values(app.Spec.Hosts))
	have := slices.Sorted(slices.Values(entry.hosts))
	switch {
	case len(entry.conflicts) > 0:
		set(kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionFalse, kubeplexv1alpha1.HostConflictReason,
			strings.Join(entry.conflicts, "; "))
	case !entry.inTable || !slices.Equal(want, have):
		set(kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionUnknown, kubeplexv1alpha1.RoutingPendingReason,
			"the stored routing table does not hold the app's hosts as specified yet")
	case len(want) == 0:
		set(kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.NoHostsReason, "the app requests no hosts")
	default:
		set(kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason,
			"every host in spec.hosts maps to the app")
	}
}
