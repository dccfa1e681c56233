package controllers

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// DefaultTokenGracePeriod is how long a rotated-out ingest token keeps working, so
// that pods started with it can be replaced without losing lines.
const DefaultTokenGracePeriod = time.Hour

// The LogApp reconciler, by concern: this file (reconcile flow, watches),
// logapp_secret.go (the ingest token Secret and its rotation), logapp_status.go
// (conditions, pod and drain counts).

// LogAppReconciler keeps a LogApp's ingest token Secret and its status.
type LogAppReconciler struct {
	Client   client.Client
	Recorder EventRecorder
	// TokenGracePeriod: how long the previous token stays valid after a rotation.
	TokenGracePeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// View is what the stored routing table holds (Routed, HostsClaimed); nil leaves
	// those conditions alone.
	View *RoutingView
	// IngestURL is the routers' ingest URL shown to add-ons (status.addons[].url).
	IngestURL string
}

// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps/status,verbs=get;update;patch
// Secrets: create/update the app's <app>-kubeplex-token Secret, list/watch for the
// label-filtered cache of them (docs/security.md). No patch, no delete.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=kubeplex.io,resources=logdrains,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one LogApp's token Secret and status up to date.
func (r *LogAppReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	app := &kubeplexv1alpha1.LogApp{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		// Owner references delete the token Secret; nothing outside the cluster to undo.
		return ctrl.Result{}, nil
	}
	base := app.DeepCopy()
	defer func() {
		if observed(retErr) {
			app.Status.ObservedGeneration = app.Generation
		}
		if err := patchStatus(ctx, r.Client, "logapp", base, app, base.Status, app.Status); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	return r.reconcileNormal(ctx, app)
}

func (r *LogAppReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// reconcileNormal: the token Secret (TokenIssued) → pod and drain counts → Routed
// and HostsClaimed from the stored routing table → Ready.
func (r *LogAppReconciler) reconcileNormal(ctx context.Context, app *kubeplexv1alpha1.LogApp) (ctrl.Result, error) {
	token, requeue, err := r.reconcileTokenSecret(ctx, app)
	if err == nil {
		err = r.reconcileCollectorSecret(ctx, app)
	}
	if err == nil {
		err = r.reconcileAddonSecrets(ctx, app)
	}
	if err != nil {
		var terminal *specError
		if errors.As(err, &terminal) {
			r.setTokenIssued(app, metav1.ConditionFalse, terminal.reason, terminal.Error())
			r.setReady(app, metav1.ConditionFalse, terminal.reason, terminal.Error())
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		const msg = "the token Secret could not be written; retrying"
		r.setTokenIssued(app, metav1.ConditionFalse, kubeplexv1alpha1.TokenSecretErrorReason, msg)
		r.setReady(app, metav1.ConditionFalse, kubeplexv1alpha1.TokenSecretErrorReason, msg)
		return ctrl.Result{}, err
	}
	r.setTokenIssued(app, metav1.ConditionTrue, kubeplexv1alpha1.TokenValidReason,
		"the token Secret "+app.Status.TokenSecretName+" holds a valid ingest token")
	if err := r.reconcilePods(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileDrainCount(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	r.reconcileRouting(app, token)
	r.setReady(app, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason, "ingest token issued; the app is in the routing table")
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// appWorkers is how many LogApps reconcile at once. Each new app costs two Secret
// creates and a status write in a row, and a drain enters the table only once its
// app is Ready, so at 2 workers a first install of 15,000 apps waited on the apps:
// 30,000 drains over them had 461 in the table 3 minutes after the last create
// (docs/scaling.md). Reconciles of different apps share nothing but the client.
const appWorkers = 8

// SetupWithManager registers the controller: LogApps, their token Secrets, the pods
// they select (metadata only) and the drains that name them.
func (r *LogAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&kubeplexv1alpha1.LogApp{}).
		Owns(&corev1.Secret{}).
		WatchesMetadata(&corev1.Pod{}, enqueueAfter(coalesceDelay, appForPod)).
		Watches(&kubeplexv1alpha1.LogDrain{}, enqueueAfter(coalesceDelay, appForDrain),
			builder.WithPredicates(drainAppChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: appWorkers}).
		Named("logapp")
	if r.View != nil && r.View.events != nil {
		// The routes reconciler names the apps whose stored table entry changed.
		b = b.WatchesRawSource(source.Channel(r.View.events, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

// appForPod maps a pod to the app its kubeplex.io/app label names.
func appForPod(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[kubeplexv1alpha1.AppLabel]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}

func appForDrain(_ context.Context, obj client.Object) []reconcile.Request {
	d, ok := obj.(*kubeplexv1alpha1.LogDrain)
	if !ok || d.Spec.AppRef.Name == "" {
		return nil // a namespace-wide drain is in no app's own drain count
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.AppRef.Name}}}
}
