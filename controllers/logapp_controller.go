package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
)

// DefaultTokenGracePeriod is how long a rotated-out ingest token keeps working, so
// that pods started with it can be replaced without losing lines.
const DefaultTokenGracePeriod = time.Hour

// LogAppReconciler keeps a LogApp's ingest token Secret and its status.
type LogAppReconciler struct {
	Client   client.Client
	Recorder EventRecorder
	// TokenGracePeriod: how long the previous token stays valid after a rotation.
	TokenGracePeriod time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch
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
		if err := r.patchStatus(ctx, base, app); err != nil {
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

func (r *LogAppReconciler) reconcileNormal(ctx context.Context, app *kubeplexv1alpha1.LogApp) (ctrl.Result, error) {
	app.Status.ObservedGeneration = app.Generation
	requeue, err := r.reconcileTokenSecret(ctx, app)
	if err != nil {
		var terminal *specError
		if errors.As(err, &terminal) {
			r.setReady(app, metav1.ConditionFalse, terminal.reason, terminal.Error())
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		r.setReady(app, metav1.ConditionFalse, kubeplexv1alpha1.TokenSecretErrorReason, "the token Secret could not be written; retrying")
		return ctrl.Result{}, err
	}
	if err := r.reconcilePods(ctx, app); err != nil {
		var terminal *specError
		if errors.As(err, &terminal) {
			r.setReady(app, metav1.ConditionFalse, terminal.reason, terminal.Error())
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
		return ctrl.Result{}, err
	}
	if err := r.reconcileDrainCount(ctx, app); err != nil {
		return ctrl.Result{}, err
	}
	r.setReady(app, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason, "ingest token issued; the app is in the routing table")
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// reconcileTokenSecret creates the token Secret, rotates the token when the rotate
// annotation changes, and retires the previous token when its grace period ends. It
// returns when to come back for that.
func (r *LogAppReconciler) reconcileTokenSecret(ctx context.Context, app *kubeplexv1alpha1.LogApp) (time.Duration, error) {
	log := logf.FromContext(ctx)
	name := app.Name + kubeplexv1alpha1.TokenSecretSuffix
	rotation := app.Annotations[kubeplexv1alpha1.RotateTokenAnnotation]
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: name}, sec)
	if apierrors.IsNotFound(err) {
		tok, err := newToken("t")
		if err != nil {
			return 0, err
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: app.Namespace,
				Labels:      routes.Labels(kubeplexv1alpha1.SecretRoleToken),
				Annotations: map[string]string{kubeplexv1alpha1.TokenRotationAnnotation: rotation},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)},
		}
		if err := controllerutil.SetControllerReference(app, sec, r.Client.Scheme()); err != nil {
			return 0, fmt.Errorf("set owner of token secret: %w", err)
		}
		if err := r.Client.Create(ctx, sec); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Someone else's Secret that our label-filtered cache cannot see.
				return 0, &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
					msg: fmt.Sprintf("Secret %s exists and is not managed by kubeplex; delete or rename it", name)}
			}
			return 0, fmt.Errorf("create token secret: %w", err)
		}
		app.Status.TokenSecretName = name
		log.Info("created ingest token secret", "secret", name)
		r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenIssued", "CreateTokenSecret", "created ingest token Secret %s", name)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get token secret: %w", err)
	}
	if !metav1.IsControlledBy(sec, app) {
		return 0, &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
			msg: fmt.Sprintf("Secret %s exists and is not owned by this LogApp", name)}
	}
	app.Status.TokenSecretName = name

	upd := sec.DeepCopy()
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	now := r.now()
	var requeue time.Duration
	var event func()
	switch cur := string(upd.Data[kubeplexv1alpha1.TokenSecretKey]); {
	case !routes.ValidIngestToken(cur):
		// Edited by hand or emptied: issue a fresh one. The old value was no token.
		tok, err := newToken("t")
		if err != nil {
			return 0, err
		}
		upd.Data = map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)}
		delete(upd.Annotations, kubeplexv1alpha1.PreviousTokenNotAfterAnnotation)
		upd.Annotations[kubeplexv1alpha1.TokenRotationAnnotation] = rotation
		event = func() {
			r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, "TokenReissued", "RotateToken",
				"token Secret %s held no valid token; issued a new one", name)
		}
	case upd.Annotations[kubeplexv1alpha1.TokenRotationAnnotation] != rotation:
		tok, err := newToken("t")
		if err != nil {
			return 0, err
		}
		grace := r.TokenGracePeriod
		notAfter := now.Add(grace).UTC().Truncate(time.Second)
		upd.Data = map[string][]byte{
			kubeplexv1alpha1.TokenSecretKey:         []byte(tok),
			kubeplexv1alpha1.PreviousTokenSecretKey: []byte(cur),
		}
		upd.Annotations[kubeplexv1alpha1.PreviousTokenNotAfterAnnotation] = notAfter.Format(time.RFC3339)
		upd.Annotations[kubeplexv1alpha1.TokenRotationAnnotation] = rotation
		app.Status.LastTokenRotation = &metav1.Time{Time: now.Truncate(time.Second)}
		requeue = notAfter.Sub(now) + time.Second
		event = func() {
			r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenRotated", "RotateToken",
				"issued a new ingest token; the previous one stays valid until %s", notAfter.Format(time.RFC3339))
		}
	default:
		if _, ok := upd.Data[kubeplexv1alpha1.PreviousTokenSecretKey]; ok {
			notAfter, err := time.Parse(time.RFC3339, upd.Annotations[kubeplexv1alpha1.PreviousTokenNotAfterAnnotation])
			if err != nil || !now.Before(notAfter) {
				delete(upd.Data, kubeplexv1alpha1.PreviousTokenSecretKey)
				delete(upd.Annotations, kubeplexv1alpha1.PreviousTokenNotAfterAnnotation)
				event = func() {
					r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, "TokenRetired", "RotateToken", "the previous ingest token's grace period ended")
				}
			} else {
				requeue = notAfter.Sub(now) + time.Second
			}
		}
	}
	if equality.Semantic.DeepEqual(sec, upd) {
		return requeue, nil
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		return 0, fmt.Errorf("update token secret: %w", err)
	}
	log.Info("updated ingest token secret", "secret", name)
	if event != nil {
		event()
	}
	return requeue, nil
}

// reconcilePods counts the app's pods and what the injection webhook did to them, from
// the annotations it leaves (kubeplex.io/injection).
func (r *LogAppReconciler) reconcilePods(ctx context.Context, app *kubeplexv1alpha1.LogApp) error {
	sel, err := appSelector(app)
	if err != nil {
		return &specError{reason: kubeplexv1alpha1.InvalidSelectorReason, msg: "spec.selector: " + err.Error()}
	}
	pods := &metav1.PartialObjectMetadataList{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	if err := r.Client.List(ctx, pods, client.InNamespace(app.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var n, injected, skipped int32
	for _, p := range pods.Items {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		n++
		switch p.Annotations[kubeplexv1alpha1.InjectionAnnotation] {
		case kubeplexv1alpha1.InjectionInjected:
			injected++
		case kubeplexv1alpha1.InjectionSkipped:
			skipped++
		}
	}
	app.Status.Pods, app.Status.InjectedPods, app.Status.UninjectedPods = n, injected, skipped
	return nil
}

func (r *LogAppReconciler) reconcileDrainCount(ctx context.Context, app *kubeplexv1alpha1.LogApp) error {
	var drains kubeplexv1alpha1.LogDrainList
	if err := r.Client.List(ctx, &drains, client.InNamespace(app.Namespace), client.MatchingFields{drainAppIndex: app.Name}); err != nil {
		return fmt.Errorf("list drains: %w", err)
	}
	app.Status.Drains = int32(len(drains.Items))
	return nil
}

func (r *LogAppReconciler) setReady(app *kubeplexv1alpha1.LogApp, status metav1.ConditionStatus, reason, msg string) {
	old := findCondition(app.Status.Conditions, kubeplexv1alpha1.ReadyCondition)
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{
		Type: kubeplexv1alpha1.ReadyCondition, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: app.Generation,
	})
	if old == nil || old.Status != status || old.Reason != reason {
		typ := corev1.EventTypeNormal
		if status != metav1.ConditionTrue {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(app, nil, typ, reason, "Reconcile", "Ready=%s: %s", status, msg)
	}
}

func (r *LogAppReconciler) patchStatus(ctx context.Context, base, app *kubeplexv1alpha1.LogApp) error {
	if equality.Semantic.DeepEqual(base.Status, app.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, app, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patch logapp status: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// appSelector is the LogApp's pod selector: spec.selector, or kubeplex.io/app=<name>.
func appSelector(app *kubeplexv1alpha1.LogApp) (labels.Selector, error) {
	if app.Spec.Selector == nil {
		return labels.SelectorFromSet(labels.Set{kubeplexv1alpha1.AppLabel: app.Name}), nil
	}
	return metav1.LabelSelectorAsSelector(app.Spec.Selector)
}

// SetupWithManager registers the controller: LogApps, their token Secrets, the pods
// they select (metadata only) and the drains that name them.
func (r *LogAppReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&kubeplexv1alpha1.LogApp{}).
		Owns(&corev1.Secret{}).
		WatchesMetadata(&corev1.Pod{}, enqueueAfter(coalesceDelay, r.appsForPod)).
		Watches(&kubeplexv1alpha1.LogDrain{}, enqueueAfter(coalesceDelay, appForDrain),
			builder.WithPredicates(drainAppChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Named("logapp").
		Complete(r)
}

func (r *LogAppReconciler) appsForPod(ctx context.Context, obj client.Object) []reconcile.Request {
	var apps kubeplexv1alpha1.LogAppList
	if err := r.Client.List(ctx, &apps, client.InNamespace(obj.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "list logapps for pod")
		return nil
	}
	var out []reconcile.Request
	for i := range apps.Items {
		sel, err := appSelector(&apps.Items[i])
		if err != nil {
			continue
		}
		if sel.Matches(labels.Set(obj.GetLabels())) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&apps.Items[i])})
		}
	}
	return out
}

func appForDrain(_ context.Context, obj client.Object) []reconcile.Request {
	d, ok := obj.(*kubeplexv1alpha1.LogDrain)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.AppRef.Name}}}
}
