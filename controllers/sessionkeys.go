package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/owner"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// SessionKeysSecretKey is the data key of the session signing keys (JSON, a list of
// routing.SessionKey, newest first) in the manager's session-keys Secret.
const SessionKeysSecretKey = "keys.json"

// Session key rotation defaults: a new key every day; the one before stays valid for
// verification until it is two rotations old, far beyond any connect-by deadline.
const (
	DefaultSessionKeyRotation = 24 * time.Hour
	sessionKeysKept           = 3
)

// SessionKeyReconciler keeps the Secret Namespace/Name of session signing keys: it
// creates the first key, adds a new one every Rotation and drops the oldest beyond
// three. The routes controller copies the keys into the routing table, so routers
// learn them the way they learn everything else.
type SessionKeyReconciler struct {
	Client    client.Client
	Namespace string
	Name      string
	// Rotation is the age at which the newest key is replaced (0: the default).
	Rotation time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
	// Owner, when set, is added to the Secret's owners (package owner).
	Owner *metav1.OwnerReference
}

// +kubebuilder:rbac:groups="",namespace=kubeplex-system,resources=secrets,verbs=get;list;watch;create;update

// Reconcile creates or rotates the keys and comes back when the newest is due.
func (r *SessionKeyReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	now := r.now()
	rotation := r.Rotation
	if rotation <= 0 {
		rotation = DefaultSessionKeyRotation
	}
	var sec corev1.Secret
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.Name}, &sec)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, fmt.Errorf("get session keys secret: %w", err)
	}
	found := err == nil
	keys, _ := decodeSessionKeys(&sec) // unreadable keys are replaced, not fatal
	if found && len(keys) > 0 && now.Sub(keys[0].Created) < rotation && hasLabels(sec.Labels, sessionKeyLabels()) {
		if !owner.Has(&sec, r.Owner) {
			// Made by a manager without an owner (an upgrade): adopt it, keys unchanged.
			upd := sec.DeepCopy()
			owner.Set(upd, r.Owner)
			if err := r.Client.Update(ctx, upd); err != nil {
				return ctrl.Result{}, fmt.Errorf("set owner of session keys secret: %w", err)
			}
		}
		return ctrl.Result{RequeueAfter: rotation - now.Sub(keys[0].Created)}, nil
	}
	k, err := newSessionKey(now)
	if err != nil {
		return ctrl.Result{}, err
	}
	keys = append([]routing.SessionKey{k}, keys...)
	if len(keys) > sessionKeysKept {
		keys = keys[:sessionKeysKept]
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("encode session keys: %w", err)
	}
	if !found {
		sec = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name, Labels: sessionKeyLabels()},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{SessionKeysSecretKey: b},
		}
		owner.Set(&sec, r.Owner)
		if err := r.Client.Create(ctx, &sec); err != nil {
			return ctrl.Result{}, fmt.Errorf("create session keys secret: %w", err)
		}
	} else {
		upd := sec.DeepCopy()
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		for k, v := range sessionKeyLabels() {
			upd.Labels[k] = v
		}
		upd.Data = map[string][]byte{SessionKeysSecretKey: b}
		owner.Set(upd, r.Owner)
		if err := r.Client.Update(ctx, upd); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{}, fmt.Errorf("update session keys secret (will retry): %w", err)
			}
			return ctrl.Result{}, fmt.Errorf("update session keys secret: %w", err)
		}
	}
	logf.FromContext(ctx).Info("session signing key added", "keyID", k.ID, "keys", len(keys))
	return ctrl.Result{RequeueAfter: rotation}, nil
}

func (r *SessionKeyReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func sessionKeyLabels() map[string]string {
	return routes.Labels(kubeplexv1alpha1.SecretRoleSessionKeys)
}

func newSessionKey(now time.Time) (routing.SessionKey, error) {
	var id [6]byte
	var key [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return routing.SessionKey{}, fmt.Errorf("generate session key: %w", err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return routing.SessionKey{}, fmt.Errorf("generate session key: %w", err)
	}
	return routing.SessionKey{ID: hex.EncodeToString(id[:]), Key: hex.EncodeToString(key[:]), Created: now.UTC().Truncate(time.Second)}, nil
}

// decodeSessionKeys reads the keys of a session-keys Secret, newest first, leaving out
// any that are unusable.
func decodeSessionKeys(sec *corev1.Secret) ([]routing.SessionKey, error) {
	raw, ok := sec.Data[SessionKeysSecretKey]
	if !ok {
		return nil, nil
	}
	var keys []routing.SessionKey
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("decode session keys: %w", err)
	}
	keys = slices.DeleteFunc(keys, func(k routing.SessionKey) bool {
		_, ok := k.Bytes()
		return !ok || k.ID == ""
	})
	slices.SortStableFunc(keys, func(a, b routing.SessionKey) int { return b.Created.Compare(a.Created) })
	return keys, nil
}

// signingKeys orders keys for signing: a key younger than settle goes after the
// others, because routers may not have it yet (the table takes a moment to reach
// them); the first key ever is used at once, there being no other.
func signingKeys(keys []routing.SessionKey, now time.Time, settle time.Duration) []routing.SessionKey {
	if len(keys) < 2 || now.Sub(keys[0].Created) >= settle {
		return keys
	}
	return append(slices.Clone(keys[1:]), keys[0])
}

// SetupWithManager watches the one Secret; its own writes bring it back, harmlessly.
func (r *SessionKeyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
	toKey := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: key}}
	})
	isKeys := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == r.Name
	})
	// A source that fires once at start, so the first key is made without waiting
	// for an event: the Secret's own watch, which lists it (or nothing) at start, does
	// not fire when it is absent.
	return ctrl.NewControllerManagedBy(mgr).
		Named("sessionkeys").
		WatchesRawSource(startOnce(key)).
		Watches(&corev1.Secret{}, toKey, builder.WithPredicates(isKeys)).
		Complete(r)
}

// startOnce is a source that enqueues key once when the controller starts.
func startOnce(key types.NamespacedName) source.Source {
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		q.Add(reconcile.Request{NamespacedName: key})
		return nil
	})
}
