package controllers

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/platform"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// RoutesReconciler renders every LogApp and LogDrain into the routing table and
// stores it in the routing Secrets. It has one work item: any change anywhere
// re-renders the whole table, and the work queue folds bursts into one run. The
// render remembers what it read from each Secret version and each app's encoding
// (routes.Renderer, routing.Encoder), so a run costs about a pass over the cache,
// not a decode and encode of everything (docs/scaling.md).
type RoutesReconciler struct {
	Client  client.Client
	Store   *routes.Store
	Metrics *RoutesMetrics
	// MinWriteInterval spaces table writes: each rewrites shard 0 and the changed
	// apps' shards and makes every router read them, so a burst of changes (a
	// thousand drains applied at once) must become a few writes, not a thousand.
	// 0 means no spacing.
	MinWriteInterval time.Duration
	// SessionKeysSecret names the session-keys Secret in Store.Namespace (empty: no
	// keys). Only that one is read: a Secret elsewhere with the same labels is not
	// the manager's and must not put keys into the table.
	SessionKeysSecret string
	// Platform, when set, gets a kubeplex[router] line for every change a new table
	// makes to an app (drain added or removed, token rotated or retired). Only the
	// leader reconciles, so each change is written once however many managers and
	// routers run.
	Platform *platform.Poster
	// Health, when set, holds back a "Drain … added" line until every router runs
	// the drain (at most AnnounceWait), so the new drain gets its own line: a line
	// reaches the drains its router runs when it arrives.
	Health *health.Store
	// AnnounceWait bounds that wait [DefaultAnnounceWait].
	AnnounceWait time.Duration

	// last is the table the routers were last given; known once read or written.
	last      *routing.Table
	lastKnown bool
	// renderer remembers what the last render read and encoded, so a one-drain
	// change costs about what that drain and its app cost, not the whole table.
	renderer *routes.Renderer

	// View receives what each stored table holds, for the LogApps' conditions.
	View *RoutingView

	mu        sync.Mutex
	lastWrite time.Time
	lastCost  time.Duration // how long the last render and split took (not the API calls)
}

// maxCostSpacing caps the spacing that follows the cost of a run: at 50,000 drains a
// render takes about 0.4 s of CPU, so table writes at most every 2 s keep it under a
// quarter of one CPU while changes keep coming.
const maxCostSpacing = 2 * time.Second

// DefaultAnnounceWait is how long a "Drain … added" line waits at most for the
// routers to report that they run the drain (a few router status polls).
const DefaultAnnounceWait = time.Minute

// DefaultRoutesWriteInterval is the default MinWriteInterval.
const DefaultRoutesWriteInterval = time.Second

// What the routes controller reads everywhere (apps, drains, and the token and drain
// Secrets it renders from) and writes in its own namespace (the table's shards).
// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps;logdrains,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=kubeplex-system,resources=secrets,verbs=get;create;update;delete

// Reconcile renders and writes the table.
func (r *RoutesReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	r.mu.Lock()
	// Space writes by the interval, or by a few times what one run's render and
	// split cost when the table is big: a busy manager must not spend all its time
	// rendering. The cost is wall time, which a loaded machine stretches without the
	// work growing, so its share is capped: uncapped, a run that took 2 s on a busy
	// node held every change back 6 s (docs/scaling.md).
	wait := max(r.MinWriteInterval, min(3*r.lastCost, maxCostSpacing)) - time.Since(r.lastWrite)
	if r.MinWriteInterval <= 0 {
		wait = 0
	}
	r.mu.Unlock()
	if wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var in routes.Input
	// The cache's own objects, not copies: Render and what follows only read them,
	// and at 50,000 drains a deep copy of every object costs more than the render
	// (docs/scaling.md).
	noCopy := client.UnsafeDisableDeepCopy
	var apps kubeplexv1alpha1.LogAppList
	if err := r.Client.List(ctx, &apps, noCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("list logapps: %w", err)
	}
	var drains kubeplexv1alpha1.LogDrainList
	if err := r.Client.List(ctx, &drains, noCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("list logdrains: %w", err)
	}
	var secrets corev1.SecretList
	managed := client.MatchingLabels{kubeplexv1alpha1.ManagedByLabel: kubeplexv1alpha1.ManagedByValue}
	if err := r.Client.List(ctx, &secrets, managed, noCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("list secrets: %w", err)
	}
	in.Apps, in.Drains = apps.Items, drains.Items
	for _, s := range secrets.Items {
		switch s.Labels[kubeplexv1alpha1.SecretRoleLabel] {
		case kubeplexv1alpha1.SecretRoleToken, kubeplexv1alpha1.SecretRoleDrain, kubeplexv1alpha1.SecretRoleCollector,
			kubeplexv1alpha1.SecretRoleAddon:
			in.Secrets = append(in.Secrets, s)
		case kubeplexv1alpha1.SecretRoleSessionKeys:
			if r.SessionKeysSecret != "" && s.Namespace == r.Store.Namespace && s.Name == r.SessionKeysSecret {
				keys, err := decodeSessionKeys(&s)
				if err != nil {
					log.Error(err, "session keys unreadable; the key controller replaces them")
				}
				in.SessionKeys = keys
			}
		}
	}
	platformToken, err := ensurePlatformSecret(ctx, r.Client, r.Store.Namespace, r.Store.Owner)
	if err != nil {
		return ctrl.Result{}, err
	}
	in.Platform = []string{platformToken}

	if !r.lastKnown {
		// A new leader: what the routers run is what the previous one stored.
		old, err := r.Store.Read(ctx)
		if err != nil {
			return ctrl.Result{}, fmt.Errorf("read stored routing table: %w", err)
		}
		r.last, r.lastKnown = old, true
	}

	if r.renderer == nil {
		if r.Store.Encoder == nil {
			r.Store.Encoder = &routing.Encoder{}
		}
		r.renderer = &routes.Renderer{Encoder: r.Store.Encoder}
	}
	start := time.Now()
	res := r.renderer.Render(in)
	rendered := time.Since(start)
	wr, err := r.Store.Write(ctx, res.Table)
	if err != nil {
		r.Metrics.observe(res, wr, rendered, false)
		return ctrl.Result{}, fmt.Errorf("store routing table: %w", err)
	}
	r.Metrics.observe(res, wr, rendered, true)
	if r.View != nil {
		// Problems only the renderer sees (two apps claiming a host) reach the app
		// through its HostsClaimed condition.
		r.View.publish(ctx, apps.Items, res)
	}
	for _, c := range routes.Changes(r.last, res.Table) {
		l := platform.Line{App: c.App, Proc: routing.ProcRouter, Text: c.Text}
		if c.Drain == "" || r.Health == nil {
			r.Platform.Emit(l)
			continue
		}
		id, wait := c.Drain, cmp.Or(r.AnnounceWait, DefaultAnnounceWait)
		r.Platform.EmitWhen(l, func() bool { return r.Health.RunEverywhere(id) }, wait)
	}
	r.last = res.Table
	if wr.Changed() {
		r.mu.Lock()
		r.lastWrite = time.Now()
		// The manager's own work, not the wait for the API server: the spacing keeps
		// the manager from rendering all the time; counting a loaded API server's
		// latency too held every change back by up to 3× it (docs/scaling.md).
		r.lastCost = rendered + wr.Split
		r.mu.Unlock()
		n := 0
		for _, a := range res.Table.Apps {
			n += len(a.Drains)
		}
		log.Info("routing table stored", "version", res.Table.Version, "apps", len(res.Table.Apps), "drains", n,
			"shards", wr.Shards, "written", wr.Written, "deleted", wr.Deleted, "problems", len(res.Problems))
	}
	return ctrl.Result{}, nil
}

// SetupWithManager registers the controller under the fixed key Namespace/Base.
func (r *RoutesReconciler) SetupWithManager(mgr ctrl.Manager) error {
	key := types.NamespacedName{Namespace: r.Store.Namespace, Name: r.Store.Base}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: key}}
	})
	// What the table is made of: app specs, drain existence, token and drain Secrets,
	// and the shards themselves (someone editing or deleting one is repaired).
	return ctrl.NewControllerManagedBy(mgr).
		Named("routes").
		// Labels too: namespace-wide drains pick their apps by label.
		Watches(&kubeplexv1alpha1.LogApp{}, toKey, builder.WithPredicates(
			predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		// Deletes only: a drain enters the table through its Secret (the accepted
		// destination), written after the LogDrain is in the cache, so the create
		// event would only render a table that cannot have changed yet.
		Watches(&kubeplexv1alpha1.LogDrain{}, toKey, builder.WithPredicates(deleteOnly())).
		Watches(&corev1.Secret{}, toKey, builder.WithPredicates(notOwnWrite(r.Store))).
		Complete(r)
}

// notOwnWrite drops the create and update events of the shards as the Store wrote
// them. Deletes always pass: a shard someone deleted is written again.
func notOwnWrite(s *routes.Store) predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return !s.OwnWrite(e.Object) },
		UpdateFunc: func(e event.UpdateEvent) bool { return !s.OwnWrite(e.ObjectNew) },
	}
}

func deleteOnly() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

func createOrDelete() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// RoutesMetrics are the routing table's Prometheus metrics.
type RoutesMetrics struct {
	Shards   prometheus.Gauge
	Bytes    prometheus.Gauge
	Apps     prometheus.Gauge
	Drains   prometheus.Gauge
	Problems prometheus.Gauge
	Render   prometheus.Histogram
	Writes   *prometheus.CounterVec
}

// NewRoutesMetrics creates the metrics and registers them with reg (if not nil).
func NewRoutesMetrics(reg prometheus.Registerer) *RoutesMetrics {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	m := &RoutesMetrics{
		Shards:   gauge("kubeplex_routes_shards", "Number of Secrets the routing table is stored in."),
		Bytes:    gauge("kubeplex_routes_bytes", "Encoded size of the routing table (all shards)."),
		Apps:     gauge("kubeplex_routes_apps", "Apps in the routing table."),
		Drains:   gauge("kubeplex_routes_drains", "Drains in the routing table."),
		Problems: gauge("kubeplex_routes_left_out", "Objects (or parts) left out of the routing table."),
		Render: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kubeplex_routes_render_seconds", Help: "Time to render the routing table.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		Writes: prometheus.NewCounterVec(
			prometheus.CounterOpts{Name: "kubeplex_routes_store_total", Help: "Routing table store attempts by result."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Shards, m.Bytes, m.Apps, m.Drains, m.Problems, m.Render, m.Writes)
	}
	return m
}

func (m *RoutesMetrics) observe(res routes.Result, wr routes.WriteResult, rendered time.Duration, ok bool) {
	if m == nil {
		return
	}
	m.Render.Observe(rendered.Seconds())
	if !ok {
		m.Writes.WithLabelValues("error").Inc()
		return
	}
	result := "unchanged"
	if wr.Changed() {
		result = "written"
	}
	m.Writes.WithLabelValues(result).Inc()
	total, drains := 0, 0
	for _, s := range wr.Sizes {
		total += s
	}
	for _, a := range res.Table.Apps {
		drains += len(a.Drains)
	}
	m.Shards.Set(float64(wr.Shards))
	m.Bytes.Set(float64(total))
	m.Apps.Set(float64(len(res.Table.Apps)))
	m.Drains.Set(float64(drains))
	m.Problems.Set(float64(len(res.Problems)))
}
