package controllers

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/controllers/urlpolicy"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// DefaultStatusInterval is the least time between two status writes of one drain
// while only its counters move (issue 4: at most one write per drain per 30 s).
const DefaultStatusInterval = 30 * time.Second

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
	Policy    *urlpolicy.Policy
	// Health merges the routers' reports; nil leaves Delivering and counters alone.
	Health *health.Store
	// StatusInterval throttles counter-only status writes; 0 means DefaultStatusInterval.
	StatusInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu         sync.Mutex
	lastCounts map[types.UID]time.Time // when counters were last written, per drain
	seeds      map[types.UID]seed      // status counters when this process first saw the drain
	verdicts   map[types.UID]verdict   // URL policy answers, reused for policyTTL
}

// policyTTL is how long a URL policy answer (a DNS lookup for host names) is reused;
// drains come back this often to look again. The router checks every dial anyway.
const policyTTL = 5 * time.Minute

type verdict struct {
	url string
	at  time.Time
	err error
}

// +kubebuilder:rbac:groups=kubeplex.io,resources=logdrains,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubeplex.io,resources=logdrains/status,verbs=get;update;patch

// Reconcile brings one LogDrain's Secret and status up to date.
func (r *LogDrainReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	d := &kubeplexv1alpha1.LogDrain{}
	if err := r.Client.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !d.DeletionTimestamp.IsZero() {
		// The drain Secret goes with its owner; the routing table drops the drain as
		// soon as the object is gone. Nothing outside the cluster to undo.
		return ctrl.Result{}, nil
	}
	base := d.DeepCopy()
	defer func() {
		if err := r.patchStatus(ctx, base, d); err != nil {
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
	d.Status.ObservedGeneration = d.Generation
	cur, err := r.getDrainSecret(ctx, d)
	if err != nil {
		return r.fail(d, err)
	}
	acc, verr := r.check(ctx, d)
	// An unresolvable host may be a passing DNS failure: keep what was accepted for
	// the same URL rather than cut a working drain off. Anything else withdraws it.
	var re *urlpolicy.ResolveError
	keep := errors.As(verr, &re) && cur != nil && sameAcceptedURL(cur, d.Spec.URL)
	sec, err := r.writeDrainSecret(ctx, d, cur, acc, keep)
	if err != nil {
		return r.fail(d, err)
	}
	d.Status.Token = string(sec.Data[kubeplexv1alpha1.DrainTokenSecretKey])
	if verr != nil {
		return r.fail(d, verr)
	}
	r.setReady(d, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason, "destination accepted; the drain is in the routing table")
	res := r.reconcileHealth(d)
	if u, err := url.Parse(d.Spec.URL); err == nil && !isIPLiteral(u.Hostname()) {
		// What a host name resolves to can change: look again when the answer expires.
		if res.RequeueAfter == 0 || res.RequeueAfter > policyTTL {
			res.RequeueAfter = policyTTL
		}
	}
	return res, nil
}

// check runs the checks that decide whether the drain may be routed.
func (r *LogDrainReconciler) check(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (*routes.AcceptedDrain, error) {
	acc, err := r.checkDestination(ctx, d)
	if err != nil {
		return nil, err
	}
	if err := r.resolveCredentials(ctx, d, acc); err != nil {
		return nil, err
	}
	if err := r.checkApp(ctx, d); err != nil {
		return nil, err
	}
	return acc, nil
}

// fail records why the drain is not ready. Spec problems end in a TerminalError
// (watches bring the drain back when a referenced object changes); an unresolvable
// host is retried; other errors are returned for backoff.
func (r *LogDrainReconciler) fail(d *kubeplexv1alpha1.LogDrain, err error) (ctrl.Result, error) {
	var se *specError
	var re *urlpolicy.ResolveError
	switch {
	case errors.As(err, &se):
		r.setReady(d, metav1.ConditionFalse, se.reason, se.msg)
		r.setDelivering(d, metav1.ConditionUnknown, kubeplexv1alpha1.NoRouterReportReason, "the drain is not in the routing table")
		return ctrl.Result{}, reconcile.TerminalError(err)
	case errors.As(err, &re):
		r.setReady(d, metav1.ConditionFalse, kubeplexv1alpha1.HostNotResolvedReason, re.Error()+"; retrying")
		return ctrl.Result{RequeueAfter: hostRetryInterval}, nil
	default:
		return ctrl.Result{}, err
	}
}

// getDrainSecret returns the drain's Secret, nil if there is none yet, or a spec
// error if the name is taken by a Secret the drain does not own.
func (r *LogDrainReconciler) getDrainSecret(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (*corev1.Secret, error) {
	name := d.Name + kubeplexv1alpha1.DrainSecretSuffix
	sec := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get drain secret: %w", err)
	}
	if !metav1.IsControlledBy(sec, d) {
		return nil, &specError{reason: kubeplexv1alpha1.DrainSecretErrorReason,
			msg: fmt.Sprintf("Secret %s exists and is not owned by this LogDrain", name)}
	}
	return sec, nil
}

// writeDrainSecret creates or updates the drain's Secret in one write: the drain
// token, the signing key and, when acc is set (or keep), the accepted destination.
// The Secret, not the status, is the token's durable home: status can be lost
// (restores, wipes), and the token must stay the same for the drain's life.
func (r *LogDrainReconciler) writeDrainSecret(
	ctx context.Context, d *kubeplexv1alpha1.LogDrain, cur *corev1.Secret, acc *routes.AcceptedDrain, keep bool,
) (*corev1.Secret, error) {
	want := map[string][]byte{}
	var have map[string][]byte
	if cur != nil {
		have = cur.Data
	}
	repaired := false
	switch tok := string(have[kubeplexv1alpha1.DrainTokenSecretKey]); {
	case routes.ValidDrainToken(tok):
		want[kubeplexv1alpha1.DrainTokenSecretKey] = []byte(tok)
	case routes.ValidDrainToken(d.Status.Token):
		// The token receivers already know, from status.
		want[kubeplexv1alpha1.DrainTokenSecretKey] = []byte(d.Status.Token)
		repaired = cur != nil
	default:
		tok, err := newToken("d")
		if err != nil {
			return nil, err
		}
		want[kubeplexv1alpha1.DrainTokenSecretKey] = []byte(tok)
		repaired = cur != nil
	}
	if key := string(have[kubeplexv1alpha1.DrainHMACKeySecretKey]); routes.ValidHMACKey(key) {
		want[kubeplexv1alpha1.DrainHMACKeySecretKey] = []byte(key)
	} else {
		key, err := newHMACKey()
		if err != nil {
			return nil, err
		}
		want[kubeplexv1alpha1.DrainHMACKeySecretKey] = []byte(key)
		repaired = repaired || cur != nil
	}
	switch {
	case acc != nil:
		b, err := json.Marshal(acc)
		if err != nil {
			return nil, fmt.Errorf("encode accepted drain: %w", err)
		}
		want[kubeplexv1alpha1.DrainConfigSecretKey] = b
	case keep:
		want[kubeplexv1alpha1.DrainConfigSecretKey] = have[kubeplexv1alpha1.DrainConfigSecretKey]
	}

	name := d.Name + kubeplexv1alpha1.DrainSecretSuffix
	if cur == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: routes.Labels(kubeplexv1alpha1.SecretRoleDrain)},
			Type:       corev1.SecretTypeOpaque,
			Data:       want,
		}
		if err := controllerutil.SetControllerReference(d, sec, r.Client.Scheme()); err != nil {
			return nil, fmt.Errorf("set owner of drain secret: %w", err)
		}
		if err := r.Client.Create(ctx, sec); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// Someone else's Secret, outside the manager's label-filtered cache.
				return nil, &specError{reason: kubeplexv1alpha1.DrainSecretErrorReason,
					msg: fmt.Sprintf("Secret %s exists and is not managed by kubeplex; delete or rename it", name)}
			}
			return nil, fmt.Errorf("create drain secret: %w", err)
		}
		logf.FromContext(ctx).Info("created drain secret", "secret", name)
		return sec, nil
	}
	if equality.Semantic.DeepEqual(cur.Data, want) && hasLabels(cur.Labels, routes.Labels(kubeplexv1alpha1.SecretRoleDrain)) {
		return cur, nil
	}
	upd := cur.DeepCopy()
	upd.Data = want
	for k, v := range routes.Labels(kubeplexv1alpha1.SecretRoleDrain) {
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		upd.Labels[k] = v
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		return nil, fmt.Errorf("update drain secret: %w", err)
	}
	if repaired {
		r.Recorder.Eventf(d, nil, corev1.EventTypeWarning, "DrainSecretRepaired", "Reconcile",
			"drain Secret %s lacked a valid token or signing key; repaired", name)
	}
	return upd, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// checkDestination parses the URL, applies the URL policy and fills the display
// destination. Userinfo never reaches status, Events, logs or the routing table URL.
func (r *LogDrainReconciler) checkDestination(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (*routes.AcceptedDrain, error) {
	u, perr := url.Parse(d.Spec.URL)
	if perr != nil || u.Host == "" {
		d.Status.Destination = ""
		return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: "url cannot be parsed as scheme://host[:port][/path]"}
	}
	d.Status.Destination = u.Scheme + "://" + u.Host
	switch u.Scheme {
	case "syslog", "syslog+tls", "http", "https":
	default:
		return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason,
			msg: fmt.Sprintf("url scheme %q is not one of syslog, syslog+tls, http, https", u.Scheme)}
	}
	if err := r.checkPolicy(ctx, d); err != nil {
		var na *urlpolicy.NotAllowedError
		var re *urlpolicy.ResolveError
		switch {
		case errors.As(err, &na):
			return nil, &specError{reason: kubeplexv1alpha1.URLNotAllowedReason, msg: na.Error()}
		case errors.As(err, &re):
			return nil, re
		default:
			return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: err.Error()}
		}
	}
	acc := &routes.AcceptedDrain{App: d.Spec.AppRef.Name, Generation: d.Generation}
	if u.User != nil {
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: "url userinfo is only used by http and https drains"}
		}
		acc.Username = u.User.Username()
		acc.Password, _ = u.User.Password()
	}
	clean := *u
	clean.User = nil
	acc.URL = clean.String()
	return acc, nil
}

// checkPolicy applies the URL policy, reusing an answer for the same URL younger than
// policyTTL: health reports bring active drains back every few seconds, and each
// would otherwise cost a DNS lookup. Lookup failures are never reused.
func (r *LogDrainReconciler) checkPolicy(ctx context.Context, d *kubeplexv1alpha1.LogDrain) error {
	now := r.now()
	r.mu.Lock()
	v, ok := r.verdicts[d.UID]
	r.mu.Unlock()
	if ok && v.url == d.Spec.URL && now.Sub(v.at) < policyTTL {
		return v.err
	}
	_, err := r.Policy.Check(ctx, d.Spec.URL)
	var re *urlpolicy.ResolveError
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.verdicts == nil {
		r.verdicts = map[types.UID]verdict{}
	}
	if errors.As(err, &re) {
		delete(r.verdicts, d.UID)
	} else {
		r.verdicts[d.UID] = verdict{url: d.Spec.URL, at: now, err: err}
	}
	return err
}

// resolveCredentials reads the Secrets the drain refers to. A missing Secret or key
// is SecretNotFound; the Secret watch brings the drain back when it appears.
func (r *LogDrainReconciler) resolveCredentials(ctx context.Context, d *kubeplexv1alpha1.LogDrain, acc *routes.AcceptedDrain) error {
	if ref := d.Spec.CredentialsSecretRef; ref != nil {
		data, err := r.secretData(ctx, d.Namespace, ref.Name)
		if err != nil {
			return err
		}
		userKey, passKey := ref.UsernameKey, ref.PasswordKey
		if userKey == "" {
			userKey = "username"
		}
		if passKey == "" {
			passKey = "password"
		}
		pass, ok := data[passKey]
		if !ok {
			return &specError{reason: kubeplexv1alpha1.SecretNotFoundReason,
				msg: fmt.Sprintf("Secret %s has no key %q", ref.Name, passKey)}
		}
		acc.Username, acc.Password = string(data[userKey]), string(pass)
	}
	if t := d.Spec.TLS; t != nil && (strings.HasPrefix(acc.URL, "https://") || strings.HasPrefix(acc.URL, "syslog+tls://")) {
		acc.TLS = &routing.TLS{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		if ref := t.CASecretRef; ref != nil {
			data, err := r.secretData(ctx, d.Namespace, ref.Name)
			if err != nil {
				return err
			}
			ca, ok := data[ref.Key]
			if !ok {
				return &specError{reason: kubeplexv1alpha1.SecretNotFoundReason,
					msg: fmt.Sprintf("Secret %s has no key %q", ref.Name, ref.Key)}
			}
			if !x509.NewCertPool().AppendCertsFromPEM(ca) {
				return &specError{reason: kubeplexv1alpha1.InvalidTLSReason,
					msg: fmt.Sprintf("Secret %s key %q holds no PEM certificate", ref.Name, ref.Key)}
			}
			acc.TLS.CAPEM = string(ca)
		}
	}
	return nil
}

func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

func (r *LogDrainReconciler) secretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &specError{reason: kubeplexv1alpha1.SecretNotFoundReason, msg: fmt.Sprintf("Secret %s not found", name)}
		}
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	return s.Data, nil
}

func (r *LogDrainReconciler) checkApp(ctx context.Context, d *kubeplexv1alpha1.LogDrain) error {
	app := &kubeplexv1alpha1.LogApp{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.AppRef.Name}, app); err != nil {
		if apierrors.IsNotFound(err) {
			return &specError{reason: kubeplexv1alpha1.AppNotFoundReason, msg: fmt.Sprintf("LogApp %s not found", d.Spec.AppRef.Name)}
		}
		return fmt.Errorf("get logapp: %w", err)
	}
	if !meta.IsStatusConditionTrue(app.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
		return &specError{reason: kubeplexv1alpha1.AppNotReadyReason, msg: fmt.Sprintf("LogApp %s is not Ready", d.Spec.AppRef.Name)}
	}
	return nil
}

func sameAcceptedURL(sec *corev1.Secret, raw string) bool {
	var acc routes.AcceptedDrain
	if err := json.Unmarshal(sec.Data[kubeplexv1alpha1.DrainConfigSecretKey], &acc); err != nil {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	u.User = nil
	return u.String() == acc.URL
}

func (r *LogDrainReconciler) setReady(d *kubeplexv1alpha1.LogDrain, status metav1.ConditionStatus, reason, msg string) {
	r.setCondition(d, kubeplexv1alpha1.ReadyCondition, status, reason, msg)
}

func (r *LogDrainReconciler) setDelivering(d *kubeplexv1alpha1.LogDrain, status metav1.ConditionStatus, reason, msg string) {
	if r.Health == nil {
		return
	}
	r.setCondition(d, kubeplexv1alpha1.DeliveringCondition, status, reason, msg)
}

// setCondition sets a condition and records an Event when its status or reason
// changes (a state change), not when only the message does.
func (r *LogDrainReconciler) setCondition(d *kubeplexv1alpha1.LogDrain, typ string, status metav1.ConditionStatus, reason, msg string) {
	old := findCondition(d.Status.Conditions, typ)
	meta.SetStatusCondition(&d.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: d.Generation,
	})
	if old == nil && status == metav1.ConditionUnknown {
		return
	}
	if old == nil || old.Status != status || old.Reason != reason {
		evType := corev1.EventTypeNormal
		if status == metav1.ConditionFalse {
			evType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(d, nil, evType, reason, "Reconcile", "%s=%s: %s", typ, status, msg)
	}
}

func (r *LogDrainReconciler) patchStatus(ctx context.Context, base, d *kubeplexv1alpha1.LogDrain) error {
	if equality.Semantic.DeepEqual(base.Status, d.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, d, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("patch logdrain status: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// reconcileHealth writes the routers' view of the drain: the Delivering condition
// at once when its state changes, counters and last error at most once per
// StatusInterval otherwise (coming back when the interval ends).
func (r *LogDrainReconciler) reconcileHealth(d *kubeplexv1alpha1.LogDrain) ctrl.Result {
	if r.Health == nil {
		return ctrl.Result{}
	}
	sum := r.Health.Get(routes.ID(d.Namespace, d.Name))
	status, reason, msg := deliveringCondition(sum)
	old := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition)
	stateChanged := old == nil || old.Status != status || old.Reason != reason

	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seeds == nil {
		r.seeds, r.lastCounts = map[types.UID]seed{}, map[types.UID]time.Time{}
	}
	sd, ok := r.seeds[d.UID]
	if !ok {
		// Counts from before this manager started are in status already; the store
		// counts only what routers delivered since.
		sd = seed{d.Status.Delivered, d.Status.Dropped}
		r.seeds[d.UID] = sd
	}
	want := d.Status.DeepCopy()
	want.Delivered, want.Dropped = sd.delivered+sum.Delivered, sd.dropped+sum.Dropped
	if sum.LastSuccess != nil {
		want.LastDeliveryTime = &metav1.Time{Time: sum.LastSuccess.Truncate(time.Second)}
	}
	if sum.LastError != "" {
		want.LastError = sum.LastError
	}
	countersChanged := !equality.Semantic.DeepEqual(want, &d.Status)
	if !stateChanged && !countersChanged {
		return ctrl.Result{}
	}
	interval := r.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}
	if !stateChanged {
		if wait := interval - now.Sub(r.lastCounts[d.UID]); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}
		}
	}
	r.lastCounts[d.UID] = now
	d.Status.Delivered, d.Status.Dropped = want.Delivered, want.Dropped
	d.Status.LastDeliveryTime, d.Status.LastError = want.LastDeliveryTime, want.LastError
	r.setCondition(d, kubeplexv1alpha1.DeliveringCondition, status, reason, msg)
	return ctrl.Result{}
}

type seed struct{ delivered, dropped int64 }

func deliveringCondition(s health.Summary) (metav1.ConditionStatus, string, string) {
	switch s.State() {
	case health.StateFailing:
		return metav1.ConditionFalse, kubeplexv1alpha1.DeliveryFailedReason, "delivery failing: " + s.LastError
	case health.StateDelivered:
		return metav1.ConditionTrue, kubeplexv1alpha1.DeliveredReason, "routers deliver to the drain"
	case health.StateNoTraffic:
		return metav1.ConditionUnknown, kubeplexv1alpha1.NoTrafficReason, "routers carry the drain; nothing delivered yet"
	default:
		return metav1.ConditionUnknown, kubeplexv1alpha1.NoRouterReportReason, "no router has reported on this drain yet"
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
		Watches(&kubeplexv1alpha1.LogApp{}, handler.EnqueueRequestsFromMapFunc(r.drainsForApp), builder.WithPredicates(appReadyChanged())).
		WatchesRawSource(source.Kind(secretsMeta, secretMeta, handler.TypedEnqueueRequestsFromMapFunc(r.drainsForSecret))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Named("logdrain")
	if healthEvents != nil {
		b = b.WatchesRawSource(source.Channel(healthEvents, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(r)
}

func (r *LogDrainReconciler) drainsForApp(ctx context.Context, obj client.Object) []reconcile.Request {
	return r.drainsBy(ctx, obj.GetNamespace(), drainAppIndex, obj.GetName())
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
