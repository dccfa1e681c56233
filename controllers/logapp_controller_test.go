package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

func pod(ns, name string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}}},
	}
}

// splitTokens separates an app's ingest tokens from its collector credential.
func splitTokens(all []routing.Token) (ingest, collector []routing.Token) {
	for _, t := range all {
		if t.Collector {
			collector = append(collector, t)
		} else {
			ingest = append(ingest, t)
		}
	}
	return ingest, collector
}

func tokenSecret(t *testing.T, app *kubeplexv1alpha1.LogApp) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: app.Namespace, Name: app.Name + kubeplexv1alpha1.TokenSecretSuffix}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLogAppTokenPodsAndDrains: a LogApp gets an owned token Secret, Ready=True, its
// pods counted by what the webhook annotated, its drains counted; a second reconcile
// of the unchanged object writes nothing.
func TestLogAppTokenPodsAndDrains(t *testing.T) {
	m := startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	app := newApp(ns, "web")
	create(t, app,
		pod(ns, "web-1", map[string]string{kubeplexv1alpha1.AppLabel: "web"}, map[string]string{kubeplexv1alpha1.InjectionAnnotation: kubeplexv1alpha1.InjectionInjected}),
		pod(ns, "web-2", map[string]string{kubeplexv1alpha1.AppLabel: "web"}, map[string]string{kubeplexv1alpha1.InjectionAnnotation: kubeplexv1alpha1.InjectionInjected}),
		pod(ns, "web-3", map[string]string{kubeplexv1alpha1.AppLabel: "web"}, map[string]string{kubeplexv1alpha1.InjectionAnnotation: kubeplexv1alpha1.InjectionSkipped}),
		pod(ns, "web-4", map[string]string{kubeplexv1alpha1.AppLabel: "web"}, nil),
		pod(ns, "other", map[string]string{kubeplexv1alpha1.AppLabel: "other"}, map[string]string{kubeplexv1alpha1.InjectionAnnotation: kubeplexv1alpha1.InjectionInjected}),
	)
	condition(t, app, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	if app.Status.TokenSecretName != "web-kubeplex-token" {
		t.Errorf("tokenSecretName %q", app.Status.TokenSecretName)
	}
	sec := tokenSecret(t, app)
	tok := string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
	if !routes.ValidIngestToken(tok) || !metav1.IsControlledBy(sec, app) {
		t.Fatalf("token secret: token valid %v, controlled by app %v", routes.ValidIngestToken(tok), metav1.IsControlledBy(sec, app))
	}
	counts := func(pods, injected, uninjected, drains int32) func() error {
		return func() error {
			get(t, app)
			s := app.Status
			if s.Pods != pods || s.InjectedPods != injected || s.UninjectedPods != uninjected || s.Drains != drains {
				return fmt.Errorf("pods %d injected %d uninjected %d drains %d, want %d %d %d %d",
					s.Pods, s.InjectedPods, s.UninjectedPods, s.Drains, pods, injected, uninjected, drains)
			}
			return nil
		}
	}
	testenv.Eventually(t, "pod counts", counts(4, 2, 1, 0))
	create(t, pod(ns, "web-5", map[string]string{kubeplexv1alpha1.AppLabel: "web"}, map[string]string{kubeplexv1alpha1.InjectionAnnotation: kubeplexv1alpha1.InjectionSkipped}))
	testenv.Eventually(t, "new pod counted", counts(5, 2, 2, 0))
	create(t, newDrain(ns, "d1", "web", "syslog://127.0.0.2:514"), newDrain(ns, "d2", "web", "syslog://127.0.0.2:515"))
	testenv.Eventually(t, "drains counted", counts(5, 2, 2, 2))
	if err := k8s.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1"}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "deleted pod uncounted", counts(4, 1, 2, 2))

	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil {
			return errors.New("no entry")
		}
		ingest, collector := splitTokens(a.Tokens)
		if len(ingest) != 1 || ingest[0].SHA256 != routing.HashToken(tok) || len(collector) != 1 || len(a.Drains) != 2 {
			return fmt.Errorf("entry %+v", a)
		}
		return nil
	})

	// The specific conditions beside Ready.
	condition(t, app, kubeplexv1alpha1.TokenIssuedCondition, metav1.ConditionTrue, kubeplexv1alpha1.TokenValidReason)
	condition(t, app, kubeplexv1alpha1.RoutedCondition, metav1.ConditionTrue, kubeplexv1alpha1.RoutedReason)
	condition(t, app, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.NoHostsReason)

	// A second reconcile of the unchanged app writes nothing.
	get(t, app)
	sec = tokenSecret(t, app)
	r := &LogAppReconciler{Client: m.client, Recorder: discardRecorder{}, TokenGracePeriod: time.Hour}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)}); err != nil {
		t.Fatal(err)
	}
	app2, sec2 := app.DeepCopy(), sec.DeepCopy()
	get(t, app2)
	get(t, sec2)
	if app2.ResourceVersion != app.ResourceVersion || sec2.ResourceVersion != sec.ResourceVersion {
		t.Errorf("no-op reconcile wrote: app rv %s→%s, secret rv %s→%s", app.ResourceVersion, app2.ResourceVersion, sec.ResourceVersion, sec2.ResourceVersion)
	}
	waitEvents(t, app, "TokenIssued", kubeplexv1alpha1.ReconciledReason)
	assertNoLeak(t, m.logs, ns, map[string]string{"ingest token": tok})
}

// TestLogAppTokenRotation: changing the rotate annotation issues a new token; the old
// one stays in the routing table with notAfter until the grace period ends, then
// leaves the Secret and the table. The same annotation value never rotates twice.
func TestLogAppTokenRotation(t *testing.T) {
	// The grace period passes on a clock the test moves: with a real one (it was 4 s)
	// a loaded machine could miss the state in which both tokens are in the table.
	const grace = time.Hour
	clock := &testClock{t: time.Now()}
	m := startManager(t, Config{TokenGracePeriod: grace, Now: clock.Now})
	ns := newNamespace(t)
	ctx := context.Background()
	app := newApp(ns, "api")
	create(t, app)
	condition(t, app, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	old := string(tokenSecret(t, app).Data[kubeplexv1alpha1.TokenSecretKey])

	patch := client.MergeFrom(app.DeepCopy())
	app.Annotations = map[string]string{kubeplexv1alpha1.RotateTokenAnnotation: "2026-11-25T10:00:00Z"}
	if err := k8s.Patch(ctx, app, patch); err != nil {
		t.Fatal(err)
	}
	var cur string
	testenv.Eventually(t, "rotated token", func() error {
		s := tokenSecret(t, app)
		cur = string(s.Data[kubeplexv1alpha1.TokenSecretKey])
		if cur == old || !routes.ValidIngestToken(cur) || string(s.Data[kubeplexv1alpha1.PreviousTokenSecretKey]) != old {
			return fmt.Errorf("token changed %v, previous kept %v", cur != old, string(s.Data[kubeplexv1alpha1.PreviousTokenSecretKey]) == old)
		}
		if _, err := time.Parse(time.RFC3339, s.Annotations[kubeplexv1alpha1.PreviousTokenNotAfterAnnotation]); err != nil {
			return err
		}
		return nil
	})
	tableApp(t, routes.ID(ns, "api"), func(a *routing.App) error {
		if a == nil {
			return errors.New("no entry")
		}
		toks, _ := splitTokens(a.Tokens)
		if len(toks) != 2 {
			return fmt.Errorf("entry %+v", a)
		}
		if toks[0].SHA256 != routing.HashToken(cur) || toks[0].NotAfter != nil ||
			toks[1].SHA256 != routing.HashToken(old) || toks[1].NotAfter == nil {
			return fmt.Errorf("tokens %+v: want the new one and the old one with notAfter", a.Tokens)
		}
		return nil
	})
	// The status patch comes at the end of the reconcile that wrote the Secret, and
	// the routing table can change before it lands: wait for it.
	testenv.Eventually(t, "status.lastTokenRotation", func() error {
		get(t, app)
		if app.Status.LastTokenRotation == nil {
			return errors.New("status.lastTokenRotation not set")
		}
		return nil
	})
	waitEvents(t, app, "TokenRotated")
	// Routed again once the stored table holds the new token.
	condition(t, app, kubeplexv1alpha1.RoutedCondition, metav1.ConditionTrue, kubeplexv1alpha1.RoutedReason)

	// The grace period ends: only the new token remains. The reconciler comes back
	// for it an hour from now in real time; a label change brings it back at once.
	clock.Advance(grace + time.Minute)
	patch = client.MergeFrom(app.DeepCopy())
	app.Labels = map[string]string{"tick": "1"}
	if err := k8s.Patch(ctx, app, patch); err != nil {
		t.Fatal(err)
	}
	tableApp(t, routes.ID(ns, "api"), func(a *routing.App) error {
		if a == nil {
			return errors.New("no entry")
		}
		if toks, _ := splitTokens(a.Tokens); len(toks) != 1 || toks[0].SHA256 != routing.HashToken(cur) {
			return fmt.Errorf("tokens %+v, want only the new one", a.Tokens)
		}
		return nil
	})
	s := tokenSecret(t, app)
	if _, ok := s.Data[kubeplexv1alpha1.PreviousTokenSecretKey]; ok || string(s.Data[kubeplexv1alpha1.TokenSecretKey]) != cur {
		t.Errorf("after the grace period the Secret holds previous=%v, token unchanged=%v", ok, string(s.Data[kubeplexv1alpha1.TokenSecretKey]) == cur)
	}
	waitEvents(t, app, "TokenRetired")

	// Reconciling again with the same annotation value does not rotate.
	r := &LogAppReconciler{Client: m.client, Recorder: discardRecorder{}, TokenGracePeriod: grace}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(app)}); err != nil {
		t.Fatal(err)
	}
	if s2 := tokenSecret(t, app); s2.ResourceVersion != s.ResourceVersion {
		t.Error("reconcile with an unchanged rotate annotation rewrote the token Secret")
	}
	assertNoLeak(t, m.logs, ns, map[string]string{"old ingest token": old, "new ingest token": cur})
}

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestLogAppSecretProblems: a foreign Secret in the token Secret's place gives
// Ready=False and TokenIssued=False with a reason; removing the cause heals.
func TestLogAppSecretProblems(t *testing.T) {
	startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squat" + kubeplexv1alpha1.TokenSecretSuffix},
		StringData: map[string]string{"token": "mine"}}
	create(t, foreign)
	app := newApp(ns, "squat")
	create(t, app)
	c := condition(t, app, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.TokenSecretErrorReason)
	t.Logf("foreign secret: %s", c.Message)
	condition(t, app, kubeplexv1alpha1.TokenIssuedCondition, metav1.ConditionFalse, kubeplexv1alpha1.TokenSecretErrorReason)
	if err := k8s.Delete(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	// Nothing watches a foreign Secret's deletion; a spec change brings the app back.
	patch := client.MergeFrom(app.DeepCopy())
	app.Spec.HistorySize = 100
	if err := k8s.Patch(ctx, app, patch); err != nil {
		t.Fatal(err)
	}
	condition(t, app, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	condition(t, app, kubeplexv1alpha1.TokenIssuedCondition, metav1.ConditionTrue, kubeplexv1alpha1.TokenValidReason)
	condition(t, app, kubeplexv1alpha1.RoutedCondition, metav1.ConditionTrue, kubeplexv1alpha1.RoutedReason)
}

// TestLogAppHostsClaimed: an app's hosts are claimed when the stored table maps them
// to it; a later app asking for a taken host gets HostsClaimed=False/HostConflict
// (and an Event) while staying routed, and claims the host once the holder lets go.
func TestLogAppHostsClaimed(t *testing.T) {
	startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	// Hosts are claimed cluster-wide, oldest app first: names of this namespace's own,
	// so apps of an earlier run (go test -count=N) hold none of them.
	www, api, shop := "www."+ns+".test", "api."+ns+".test", "shop."+ns+".test"
	first := newApp(ns, "first")
	first.Spec.Hosts = []string{www, api}
	create(t, first)
	condition(t, first, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason)

	second := newApp(ns, "second")
	second.Spec.Hosts = []string{api, shop}
	create(t, second)
	c := condition(t, second, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionFalse, kubeplexv1alpha1.HostConflictReason)
	if !strings.Contains(c.Message, api) || !strings.Contains(c.Message, routes.ID(ns, "first")) {
		t.Errorf("conflict message %q names neither the host nor its holder", c.Message)
	}
	condition(t, second, kubeplexv1alpha1.RoutedCondition, metav1.ConditionTrue, kubeplexv1alpha1.RoutedReason)
	tableApp(t, routes.ID(ns, "second"), func(a *routing.App) error {
		if a == nil || !slices.Equal(a.Hosts, []string{shop}) {
			return fmt.Errorf("entry %+v, want only the free host", a)
		}
		return nil
	})
	waitEvents(t, second, kubeplexv1alpha1.HostConflictReason)

	// The holder drops the host: the second app claims both of its hosts.
	patch := client.MergeFrom(first.DeepCopy())
	first.Spec.Hosts = []string{www}
	if err := k8s.Patch(ctx, first, patch); err != nil {
		t.Fatal(err)
	}
	condition(t, first, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason)
	condition(t, second, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason)
}
