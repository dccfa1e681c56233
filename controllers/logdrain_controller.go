package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/platform"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/egress"
)

// The LogDrain reconciler, by concern: this file (reconcile flow, watches, memory),
// logdrain_checks.go (URL policy, credentials, app), logdrain_secret.go (the drain
// Secret), logdrain_status.go (conditions and delivery health).

// DefaultStatusInterval is the least time between two status writes of one drain
// while only its counters move (issue 4: at most one write per drain per 30 s).
const DefaultStatusInterval = 30 * time.Second

// drainWorkers is how many drains are reconciled at once. A drain's reconcile is a
// few API writes in a row (its Secret, its status), so the rate is workers divided by
// the API server's write latency: with 4 workers and 13 ms writes a burst of 10,000
// drains reached the routing table 48 s after the last was created; with 16 it
// followed the creates within seconds (docs/scaling.md). The API server's priority
// and fairness, not this number, protects the API server.
const drainWorkers = 16

// hostRetryInterval is how soon a drain whose host did not resolve is looked at again.
const hostRetryInterval = time.Minute

// LogDrainReconciler keeps a LogDrain's Secret (drain token, signing key, accepted
// destination) and its status.
type LogDrainReconciler struct {
	Client client.Client
	// APIReader reads the user's credential Secrets, which the manager's cache does
	// not hold (it caches only Secrets the manager owns).
	APIReader client.Reader
	Recorder  EventRecorder
	Policy    *egress.Policy
	// Health merges the routers' reports; nil leaves Delivering and counters alone.
	Health *health.Store
	// StatusInterval throttles counter-only status writes; 0 means DefaultStatusInterval.
	StatusInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Platform gets a kubeplex[router] line when delivery starts failing and when it
	// recovers (nil: none).
	Platform *platform.Poster

	mu     sync.Mutex
	memory map[types.NamespacedName]*drainMemory // forgotten when the drain is deleted
}

// drainMemory is what the reconciler keeps about one drain between reconciles. It is
// keyed by name, for the deletion (which has only the name), and carries the UID, so
// a drain created again under the same name starts afresh.
type drainMemory struct {
	uid        types.UID
	seed       *seed     // status counters when this process first saw the drain
	lastCounts time.Time // when counters were last written
	verdict    *verdict  // URL policy answer, reused for policyTTL
}

// remember returns the memory of drain d, new if there is none for its UID. The
// caller holds r.mu.
func (r *LogDrainReconciler) remember(d *kubeplexv1alpha1.LogDrain) *drainMemory {
	key := client.ObjectKeyFromObject(d)
	m := r.memory[key]
	if m == nil || m.uid != d.UID {
		if r.memory == nil {
			r.memory = map[types.NamespacedName]*drainMemory{}
		}
		m = &drainMemory{uid: d.UID}
		r.memory[key] = m
	}
	return m
}

// forget drops what is kept about a deleted drain.
func (r *LogDrainReconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	delete(r.memory, key)
	r.mu.Unlock()
	if r.Health != nil {
		r.Health.Forget(routes.ID(key.Namespace, key.Name))
	}
}

// +kubebuilder:rbac:groups=kubeplex.io,resources=logdrains,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubeplex.io,resources=logdrains/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps,verbs=get;list;watch
// Secrets, cluster-wide (RBAC cannot say "only kubeplex's" or "only opted-in"):
// create/update the drain's own <drain>-kubeplex-drain Secret; list/watch for the
// label-filtered cache of those and the metadata-only watch of credential Secrets
// (to heal a drain when its Secret appears); get to read a referenced Secret, whose
// content is used only if it opted in (docs/security.md). No patch, no delete.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one LogDrain's Secret and status up to date.
func (r *LogDrainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	d := &kubeplexv1alpha1.LogDrain{}
	if err := r.Client.Get(ctx, req.NamespacedName, d); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !d.DeletionTimestamp.IsZero() {
		// The drain Secret goes with its owner; the routing table drops the drain as
		// soon as the object is gone. Nothing outside the cluster to undo.
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	base := d.DeepCopy()
	defer func() {
		if observed(retErr) {
			d.Status.ObservedGeneration = d.Generation
		}
		if err := patchStatus(ctx, r.Client, "logdrain", base, d, base.Status, d.Status); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	return r.reconcileNormal(ctx, d)
}

func (r *LogDrainReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// reconcileNormal: find the drain Secret → check the destination, credentials and
// app → write the drain Secret once (token, signing key, and the accepted
// destination only if every check passed) → status and delivery health.
func (r *LogDrainReconciler) reconcileNormal(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (ctrl.Result, error) {
	cur, err := r.getDrainSecret(ctx, d)
	if err != nil {
		return r.fail(d, err)
	}
	acc, verr := r.check(ctx, d)
	// An unresolvable host may be a passing DNS failure: keep what was accepted for
	// the same URL rather than cut a working drain off. Anything else withdraws it.
	var re *egress.ResolveError
	keep := errors.As(verr, &re) && cur != nil && sameAcceptedURL(cur, d.Spec.URL)
	sec, err := r.writeDrainSecret(ctx, d, cur, acc, keep)
	if err != nil {
		return r.fail(d, err)
	}
	d.Status.Token = string(sec.Data[kubeplexv1alpha1.DrainTokenSecretKey])
	if verr != nil {
		return r.fail(d, verr)
	}
	msg := "destination accepted; the drain is in the routing table"
	if d.Spec.AppSelector != nil {
		msg = fmt.Sprintf("destination accepted; the drain covers %d Ready LogApps of the namespace", d.Status.Apps)
	}
	r.setReady(d, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason, msg)
	res := r.reconcileHealth(ctx, d)
	if u, err := url.Parse(d.Spec.URL); err == nil && !isIPLiteral(u.Hostname()) {
		// What a host name resolves to can change: look again when the answer expires.
		if res.RequeueAfter == 0 || res.RequeueAfter > policyTTL {
			res.RequeueAfter = policyTTL
		}
	}
	return res, nil
}

// fail records why the drain is not ready. Spec problems end in a TerminalError
// (watches bring the drain back when a referenced object changes); an unresolvable
// host is retried; other errors are returned for backoff.
func (r *LogDrainReconciler) fail(d *kubeplexv1alpha1.LogDrain, err error) (ctrl.Result, error) {
	var se *specError
	var re *egress.ResolveError
	switch {
	case errors.As(err, &se):
		r.setReady(d, metav1.ConditionFalse, se.reason, se.msg)
		r.setDelivering(d, metav1.ConditionUnknown, kubeplexv1alpha1.NotRoutedReason, "the drain is not in the routing table (see Ready)")
		return ctrl.Result{}, reconcile.TerminalError(err)
	case errors.As(err, &re):
		r.setReady(d, metav1.ConditionFalse, kubeplexv1alpha1.HostNotResolvedReason, re.Error()+"; retrying")
		return ctrl.Result{RequeueAfter: hostRetryInterval}, nil
	default:
		return ctrl.Result{}, err
	}
}

// SetupWithManager registers the controller. secretsMeta is a cache holding the
// metadata of every Secret: the drain's credential Secrets are the user's, outside
// the manager's label-filtered Secret cache, and a drain waiting for one must heal as
// soon as it appears. healthEvents carries drains whose router reports changed.
func (r *LogDrainReconciler) SetupWithManager(
	mgr ctrl.Manager, secretsMeta cache.Cache, healthEvents <-chan event.TypedGenericEvent[client.Object],
) error {
	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	specOrLabels := predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})
	b := ctrl.NewControllerManagedBy(mgr).
		For(&kubeplexv1alpha1.LogDrain{}, builder.WithPredicates(specOrLabels)).
		Owns(&corev1.Secret{}).
		Watches(&kubeplexv1alpha1.LogApp{}, handler.EnqueueRequestsFromMapFunc(r.drainsForApp),
			builder.WithPredicates(predicate.Or[client.Object](appReadyChanged(), predicate.LabelChangedPredicate{}))).
		WatchesRawSource(source.Kind(secretsMeta, secretMeta, handler.TypedEnqueueRequestsFromMapFunc(r.drainsForSecret))).
		WithOptions(controller.Options{MaxConcurrentReconciles: drainWorkers}).
		Named("logdrain")
	if healthEvents != nil {
		b = b.WatchesRawSource(source.Channel(healthEvents, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

// drainsForApp maps an app to its own drains and to the namespace-wide drains of its
// namespace, which may gain or lose it (created, deleted, Ready flipped, relabelled).
func (r *LogDrainReconciler) drainsForApp(ctx context.Context, obj client.Object) []reconcile.Request {
	return append(r.drainsBy(ctx, obj.GetNamespace(), drainAppIndex, obj.GetName()),
		r.drainsBy(ctx, obj.GetNamespace(), drainAppIndex, namespaceWideIndexValue)...)
}

func (r *LogDrainReconciler) drainsForSecret(ctx context.Context, obj *metav1.PartialObjectMetadata) []reconcile.Request {
	return r.drainsBy(ctx, obj.GetNamespace(), drainSecretIndex, obj.GetName())
}

func (r *LogDrainReconciler) drainsBy(ctx context.Context, ns, field, value string) []reconcile.Request {
	var l kubeplexv1alpha1.LogDrainList
	if err := r.Client.List(ctx, &l, client.InNamespace(ns), client.MatchingFields{field: value}); err != nil {
		logf.FromContext(ctx).Error(err, "list drains", "field", field)
		return nil
	}
	out := make([]reconcile.Request, len(l.Items))
	for i := range l.Items {
		out[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l.Items[i])}
	}
	return out
}
