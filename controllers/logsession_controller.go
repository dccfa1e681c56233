package controllers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/session"
)

// SessionOptions configure log sessions in the manager.
type SessionOptions struct {
	// BaseURL is what session URLs start with (the routers' HTTP address as clients
	// reach it); "/sessions/<id>" is appended. Empty turns session issuing off.
	BaseURL string
	// TTL is the connect-by window of a URL (the seed's one minute).
	TTL time.Duration
	// Retain is how long a LogSession object is kept after it was created; it is
	// useless after its URL expired, and a connected stream does not need it.
	Retain time.Duration
	// KeysSecret names the Secret, in the manager's namespace, of the signing keys.
	KeysSecret string
	// KeyRotation is the age at which a new signing key is made.
	KeyRotation time.Duration
}

// Session defaults.
const (
	DefaultSessionTTL    = time.Minute
	DefaultSessionRetain = 10 * time.Minute
	// keySettle is how long a new signing key waits before it signs: the routing
	// table carrying it needs a moment to reach every router.
	keySettle = 30 * time.Second
)

// BindFlags registers the session flags.
func (o *SessionOptions) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.BaseURL, "session-base-url", "", "base of log-session URLs, e.g. http://kubeplex-router.kubeplex-system:8080 or an Ingress URL; empty turns LogSessions off")
	fs.DurationVar(&o.TTL, "session-ttl", DefaultSessionTTL, "how long a session URL may wait for its client to connect")
	fs.DurationVar(&o.Retain, "session-retain", DefaultSessionRetain, "how long LogSession objects are kept before they are deleted (at least --session-ttl)")
	fs.StringVar(&o.KeysSecret, "session-keys-secret", "kubeplex-session-keys", "name of the Secret of session signing keys (in --namespace)")
	fs.DurationVar(&o.KeyRotation, "session-key-rotation", DefaultSessionKeyRotation, "age at which a new session signing key is made")
}

// LogSessionReconciler answers LogSessions: it checks the app exists, signs a URL
// with the newest settled key and garbage-collects sessions past Retain.
type LogSessionReconciler struct {
	Client  client.Client
	Options SessionOptions
	// Namespace holds the keys Secret.
	Namespace string
	Now       func() time.Time
}

// +kubebuilder:rbac:groups=kubeplex.io,resources=logsessions,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=kubeplex.io,resources=logsessions/status,verbs=get;update;patch

// Reconcile issues the URL once and deletes the object when it is old.
func (r *LogSessionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	s := &kubeplexv1alpha1.LogSession{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !s.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	now := r.now()
	gcAt := s.CreationTimestamp.Add(r.retain())
	if !now.Before(gcAt) {
		if err := r.Client.Delete(ctx, s, client.Preconditions{UID: &s.UID}); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("delete old logsession: %w", err)
		}
		return ctrl.Result{}, nil
	}
	base := s.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(base.Status, s.Status) {
			return
		}
		if err := r.Client.Status().Patch(ctx, s, client.MergeFrom(base)); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("patch logsession status: %w", client.IgnoreNotFound(err)))
		}
	}()
	if err := r.issue(ctx, s, now); err != nil {
		var se *specError
		if !errors.As(err, &se) {
			return ctrl.Result{}, err
		}
		// The app may still appear (the LogApp watch brings the session back); GC
		// comes back in any case.
		r.setReady(s, metav1.ConditionFalse, se.reason, se.msg)
	}
	return ctrl.Result{RequeueAfter: gcAt.Sub(now)}, nil
}

// issue: the app exists → a signing key → the URL, once. The spec is immutable, so a
// URL once issued stays right; a second reconcile writes nothing.
func (r *LogSessionReconciler) issue(ctx context.Context, s *kubeplexv1alpha1.LogSession, now time.Time) error {
	if s.Status.URL != "" {
		return nil
	}
	if r.Options.BaseURL == "" {
		return &specError{reason: kubeplexv1alpha1.SessionsDisabledReason, msg: "the manager runs without --session-base-url"}
	}
	app := &kubeplexv1alpha1.LogApp{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.AppRef.Name}, app); err != nil {
		if apierrors.IsNotFound(err) {
			return &specError{reason: kubeplexv1alpha1.AppNotFoundReason, msg: fmt.Sprintf("LogApp %s not found", s.Spec.AppRef.Name)}
		}
		return fmt.Errorf("get logapp: %w", err)
	}
	sec := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.Options.KeysSecret}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			r.setReady(s, metav1.ConditionFalse, kubeplexv1alpha1.SigningKeyUnavailableReason, "no session signing key yet")
		}
		return fmt.Errorf("get session keys: %w", err)
	}
	keys, err := decodeSessionKeys(sec)
	if err != nil || len(keys) == 0 {
		r.setReady(s, metav1.ConditionFalse, kubeplexv1alpha1.SigningKeyUnavailableReason, "no session signing key yet")
		return fmt.Errorf("read session keys: %w", errors.Join(err, session.ErrNoKey))
	}
	lines := s.Spec.HistoryLines()
	if h := int(app.Spec.HistorySize); app.Spec.HistorySize > 0 && h < lines {
		lines = h
	}
	c := session.Claims{
		Namespace: s.Namespace, App: s.Spec.AppRef.Name, Lines: lines, Tail: s.Spec.Tail,
		Source: s.Spec.Source, Dyno: s.Spec.Dyno,
	}
	ttl := r.ttl()
	id, err := session.Sign(c, signingKeys(keys, now, keySettle), now, ttl)
	if err != nil {
		return fmt.Errorf("sign session: %w", err)
	}
	exp := metav1.NewTime(session.Expiry(now, ttl))
	s.Status.URL = strings.TrimSuffix(r.Options.BaseURL, "/") + "/sessions/" + id
	s.Status.ExpiresAt = &exp
	r.setReady(s, metav1.ConditionTrue, kubeplexv1alpha1.IssuedReason, "session URL issued; open it before expiresAt")
	return nil
}

// setReady sets Ready without an Event (unlike setCondition for apps and drains): every
// `kubeplex logs` makes a LogSession, and an Event each would double the API writes of
// reading logs; the condition and the audit log say enough.
func (r *LogSessionReconciler) setReady(s *kubeplexv1alpha1.LogSession, status metav1.ConditionStatus, reason, msg string) {
	s.Status.ObservedGeneration = s.Generation
	meta.SetStatusCondition(&s.Status.Conditions, metav1.Condition{
		Type: kubeplexv1alpha1.ReadyCondition, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: s.Generation,
	})
}

func (r *LogSessionReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *LogSessionReconciler) ttl() time.Duration {
	if r.Options.TTL <= 0 {
		return DefaultSessionTTL
	}
	return r.Options.TTL
}

func (r *LogSessionReconciler) retain() time.Duration {
	if r.Options.Retain <= 0 {
		return max(DefaultSessionRetain, r.ttl())
	}
	return max(r.Options.Retain, r.ttl())
}

// sessionAppIndex indexes LogSessions by spec.appRef.name.
const sessionAppIndex = "spec.appRef.name"

// SetupWithManager watches LogSessions, and LogApps for the sessions waiting on one.
func (r *LogSessionReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &kubeplexv1alpha1.LogSession{}, sessionAppIndex, func(o client.Object) []string {
		return []string{o.(*kubeplexv1alpha1.LogSession).Spec.AppRef.Name}
	}); err != nil {
		return fmt.Errorf("index logsessions by app: %w", err)
	}
	waiting := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var l kubeplexv1alpha1.LogSessionList
		if err := r.Client.List(ctx, &l, client.InNamespace(o.GetNamespace()), client.MatchingFields{sessionAppIndex: o.GetName()}); err != nil {
			return nil
		}
		var out []reconcile.Request
		for i := range l.Items {
			if l.Items[i].Status.URL == "" {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l.Items[i])})
			}
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&kubeplexv1alpha1.LogSession{}).
		Watches(&kubeplexv1alpha1.LogApp{}, waiting, builder.WithPredicates(createOrDelete())).
		Complete(r)
}
