package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

const keysSecret = "kubeplex-session-keys"

func newSession(ns, name, app string) *kubeplexv1alpha1.LogSession {
	return &kubeplexv1alpha1.LogSession{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       kubeplexv1alpha1.LogSessionSpec{AppRef: kubeplexv1alpha1.AppReference{Name: app}},
	}
}

// sessionReady waits for the session's Ready condition to have status and reason
// for its generation.
func sessionReady(t *testing.T, s *kubeplexv1alpha1.LogSession, status metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%s Ready=%s/%s", s.Name, status, reason), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(s), s); err != nil {
			return err
		}
		c := meta.FindStatusCondition(s.Status.Conditions, kubeplexv1alpha1.ReadyCondition)
		switch {
		case c == nil:
			return errors.New("no Ready condition")
		case c.Status != status || c.Reason != reason:
			return fmt.Errorf("Ready=%s/%s: %s", c.Status, c.Reason, c.Message)
		case c.ObservedGeneration != s.Generation || s.Status.ObservedGeneration != s.Generation:
			return fmt.Errorf("observed generation %d/%d of %d", c.ObservedGeneration, s.Status.ObservedGeneration, s.Generation)
		}
		return nil
	})
}

func sessionKeys(t *testing.T) []routing.SessionKey {
	t.Helper()
	var sec corev1.Secret
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: systemNS, Name: keysSecret}, &sec); err != nil {
		t.Fatal(err)
	}
	keys, err := decodeSessionKeys(&sec)
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	return keys
}

func TestLogSessions(t *testing.T) {
	const base = "http://router.test:8080/"
	startManager(t, Config{Sessions: SessionOptions{
		BaseURL: base, TTL: 2 * time.Second, Retain: time.Hour, KeysSecret: keysSecret,
	}})
	ns := newNamespace(t)
	app := newApp(ns, "shop")
	app.Spec.HistorySize = 50
	create(t, app)

	t.Run("issued URL", func(t *testing.T) {
		s := newSession(ns, "tail-web", "shop")
		s.Spec.Lines, s.Spec.Tail, s.Spec.Source, s.Spec.Dyno = ptr.To[int32](1000), true, "app", "web"
		before := time.Now().Truncate(time.Second)
		create(t, s)
		sessionReady(t, s, metav1.ConditionTrue, kubeplexv1alpha1.IssuedReason)
		id, ok := strings.CutPrefix(s.Status.URL, "http://router.test:8080/sessions/")
		if !ok {
			t.Fatalf("url %q", s.Status.URL)
		}
		keys := sessionKeys(t)
		// Verified a moment before its expiry, not "now": with a 2 s TTL a loaded
		// machine can take longer than that to get here.
		c, err := session.Verify(id, keys, s.Status.ExpiresAt.Add(-time.Second))
		if err != nil {
			t.Fatalf("verify issued id: %v", err)
		}
		want := session.Claims{Namespace: ns, App: "shop", Lines: 50, Tail: true, Source: "app", Dyno: "web"}
		if c.Namespace != want.Namespace || c.App != want.App || c.Lines != want.Lines || c.Tail != want.Tail ||
			c.Source != want.Source || c.Dyno != want.Dyno {
			t.Fatalf("claims %+v, want %+v (lines capped by the app's history)", c, want)
		}
		exp := s.Status.ExpiresAt.Time
		if exp.Unix() != c.Expires || exp.Before(before.Add(2*time.Second)) {
			t.Fatalf("expiresAt %v, claims exp %d", exp, c.Expires)
		}
		// Routers learn the keys from the routing table.
		testenv.Eventually(t, "session keys in the routing table", func() error {
			tb, err := readTable(context.Background())
			if err != nil {
				return err
			}
			if !slices.Equal(tb.SessionKeys, keys) {
				return fmt.Errorf("table keys %d, secret keys %d", len(tb.SessionKeys), len(keys))
			}
			return nil
		})
		// The URL is useless once expired, however often it is replayed.
		if _, err := session.Verify(id, keys, exp); !errors.Is(err, session.ErrExpired) {
			t.Fatalf("verify at expiry: %v", err)
		}
	})

	t.Run("default lines", func(t *testing.T) {
		s := newSession(ns, "plain", "shop")
		create(t, s)
		sessionReady(t, s, metav1.ConditionTrue, kubeplexv1alpha1.IssuedReason)
		id := s.Status.URL[strings.LastIndex(s.Status.URL, "/")+1:]
		c, err := session.Verify(id, sessionKeys(t), s.Status.ExpiresAt.Add(-time.Second))
		if err != nil || c.Lines != 50 || c.Tail {
			t.Fatalf("claims %+v, %v", c, err)
		}
		// Spec is immutable.
		s.Spec.Tail = true
		if err := k8s.Update(context.Background(), s); !apierrors.IsInvalid(err) {
			t.Fatalf("spec update: %v, want Invalid", err)
		}
	})

	t.Run("app not found", func(t *testing.T) {
		s := newSession(ns, "early", "later")
		create(t, s)
		sessionReady(t, s, metav1.ConditionFalse, kubeplexv1alpha1.AppNotFoundReason)
		if s.Status.URL != "" {
			t.Fatalf("url issued for a missing app: %q", s.Status.URL)
		}
		create(t, newApp(ns, "later"))
		sessionReady(t, s, metav1.ConditionTrue, kubeplexv1alpha1.IssuedReason)
	})
}

func TestLogSessionGarbageCollection(t *testing.T) {
	startManager(t, Config{Sessions: SessionOptions{
		BaseURL: "http://r.test", TTL: time.Second, Retain: 3 * time.Second, KeysSecret: keysSecret,
	}})
	ns := newNamespace(t)
	create(t, newApp(ns, "shop"))
	// Issued, then deleted 1 s + 3 s later: on a loaded machine the Issued state can
	// be gone before a poll sees it (flake-hunt: 'old Ready=True/Issued: not reached:
	// logsessions "old" not found'). A watch started first sees every state.
	watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.Watch(t.Context(), &kubeplexv1alpha1.LogSessionList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	s := newSession(ns, "old", "shop")
	create(t, s)
	issued := false
	deadline := time.After(testenv.WaitTimeout)
	for !t.Failed() {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch ended before the session was deleted")
			}
			got, isSession := ev.Object.(*kubeplexv1alpha1.LogSession)
			if !isSession || got.Name != s.Name {
				continue
			}
			if c := meta.FindStatusCondition(got.Status.Conditions, kubeplexv1alpha1.ReadyCondition); c != nil &&
				c.Status == metav1.ConditionTrue && c.Reason == kubeplexv1alpha1.IssuedReason && got.Status.URL != "" {
				issued = true
			}
			if ev.Type == watch.Deleted {
				if !issued {
					t.Fatal("session deleted without ever being issued")
				}
				return
			}
		case <-deadline:
			t.Fatalf("session not deleted within %v (issued: %v)", testenv.WaitTimeout, issued)
		}
	}
}

func TestLogSessionDisabledWithoutBaseURL(t *testing.T) {
	startManager(t, Config{Sessions: SessionOptions{KeysSecret: keysSecret}})
	ns := newNamespace(t)
	create(t, newApp(ns, "shop"))
	s := newSession(ns, "s", "shop")
	create(t, s)
	sessionReady(t, s, metav1.ConditionFalse, kubeplexv1alpha1.SessionsDisabledReason)
}

// impersonate returns a client acting as user (the admin may impersonate anyone).
func impersonate(t *testing.T, user string) client.Client {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user}
	cl, err := client.New(c, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestLogSessionRBAC: creating a LogSession is the permission to read an app's log;
// without it, or with it in another namespace, the API server refuses.
func TestLogSessionRBAC(t *testing.T) {
	nsA, nsB := newNamespace(t), newNamespace(t)
	ctx := context.Background()
	role := func(ns string) {
		create(t, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "log-reader"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{kubeplexv1alpha1.GroupVersion.Group},
				Resources: []string{"logsessions"}, Verbs: []string{"create", "get"}}},
		}, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "log-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "log-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "reader-" + ns}},
		})
	}
	role(nsA)
	role(nsB)
	readerA, readerB, nobody := impersonate(t, "reader-"+nsA), impersonate(t, "reader-"+nsB), impersonate(t, "nobody")

	if err := readerA.Create(ctx, newSession(nsA, "mine", "shop")); err != nil {
		t.Fatalf("reader of %s creating a session there: %v", nsA, err)
	}
	if err := readerA.Get(ctx, client.ObjectKey{Namespace: nsA, Name: "mine"}, &kubeplexv1alpha1.LogSession{}); err != nil {
		t.Fatalf("reader reading its session: %v", err)
	}
	if err := nobody.Create(ctx, newSession(nsA, "nope", "shop")); !apierrors.IsForbidden(err) {
		t.Fatalf("user without create logsessions: %v, want Forbidden", err)
	}
	if err := readerB.Create(ctx, newSession(nsA, "theirs", "shop")); !apierrors.IsForbidden(err) {
		t.Fatalf("reader of %s creating a session in %s: %v, want Forbidden", nsB, nsA, err)
	}
	if err := readerB.Get(ctx, client.ObjectKey{Namespace: nsA, Name: "mine"}, &kubeplexv1alpha1.LogSession{}); !apierrors.IsForbidden(err) {
		t.Fatalf("reader of %s reading a session URL of %s: %v, want Forbidden", nsB, nsA, err)
	}
}

// TestSessionKeyRotation drives the key reconciler with a clock: one key at first,
// a new one in front after each rotation, never more than three.
func TestSessionKeyRotation(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	r := &SessionKeyReconciler{Client: k8s, Namespace: systemNS, Name: "rotation-keys", Rotation: time.Hour,
		Now: func() time.Time { return now }}
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "rotation-keys"}})
	})
	read := func() []routing.SessionKey {
		var sec corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: "rotation-keys"}, &sec); err != nil {
			t.Fatal(err)
		}
		if sec.Labels[kubeplexv1alpha1.SecretRoleLabel] != kubeplexv1alpha1.SecretRoleSessionKeys ||
			sec.Labels[kubeplexv1alpha1.ManagedByLabel] != kubeplexv1alpha1.ManagedByValue {
			t.Fatalf("labels %v", sec.Labels)
		}
		keys, err := decodeSessionKeys(&sec)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	step := func(wantKeys int, wantRequeue time.Duration) []routing.SessionKey {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{})
		if err != nil {
			t.Fatal(err)
		}
		if res.RequeueAfter != wantRequeue {
			t.Fatalf("requeue after %v, want %v", res.RequeueAfter, wantRequeue)
		}
		keys := read()
		if len(keys) != wantKeys {
			t.Fatalf("%d keys, want %d", len(keys), wantKeys)
		}
		return keys
	}
	first := step(1, time.Hour)
	now = now.Add(20 * time.Minute)
	if again := step(1, 40*time.Minute); again[0] != first[0] {
		t.Fatal("key replaced before it was due")
	}
	now = now.Add(40 * time.Minute)
	second := step(2, time.Hour)
	if second[1] != first[0] || second[0].ID == first[0].ID {
		t.Fatalf("rotation: %v then %v", first, second)
	}
	// A new key does not sign until it has settled; the one before it does.
	if got := signingKeys(second, now, keySettle); got[0] != first[0] {
		t.Fatal("an unsettled key signs")
	}
	if got := signingKeys(second, now.Add(keySettle), keySettle); got[0] != second[0] {
		t.Fatal("a settled key does not sign")
	}
	now = now.Add(time.Hour)
	step(3, time.Hour)
	now = now.Add(time.Hour)
	if last := step(3, time.Hour); last[2] != second[0] {
		t.Fatal("the oldest key was not the one dropped")
	}
}
