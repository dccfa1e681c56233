package controllers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drainpeer"
	"github.com/kubeplex/kubeplex/router/ingest"
	"github.com/kubeplex/kubeplex/router/metrics"
)

func namespaceDrain(ns, name, url string, sel *metav1.LabelSelector) *kubeplexv1alpha1.LogDrain {
	return &kubeplexv1alpha1.LogDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       kubeplexv1alpha1.LogDrainSpec{AppSelector: sel, URL: url},
	}
}

// drainApps returns the apps of the table that carry an instance of the drain.
func drainApps(tb *routing.Table, drainID string) []string {
	var out []string
	for _, a := range tb.Apps {
		for _, d := range a.Drains {
			if routes.DrainID(d.ID) == drainID {
				out = append(out, a.ID)
			}
		}
	}
	slices.Sort(out)
	return out
}

func waitDrainApps(t *testing.T, drainID string, want ...string) *routing.Table {
	t.Helper()
	var tb *routing.Table
	testenv.Eventually(t, fmt.Sprintf("%s covers %v in the routing table", drainID, want), func() error {
		var err error
		if tb, err = readTable(context.Background()); err != nil {
			return err
		}
		if got := drainApps(tb, drainID); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("covers %v", got)
		}
		return nil
	})
	return tb
}

func waitStatusApps(t *testing.T, d *kubeplexv1alpha1.LogDrain, n int32) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%s status.apps = %d", d.Name, n), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		c := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition)
		if d.Status.Apps != n || c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, fmt.Sprintf("covers %d ", n)) {
			return fmt.Errorf("apps %d, Ready %+v", d.Status.Apps, c)
		}
		return nil
	})
}

// TestNamespaceDrain: a drain with an appSelector covers every matching app of its
// namespace, in the routing table and in status.apps: an app made after the drain
// joins, a deleted one leaves, a label selector narrows and follows relabelling. A
// router running the table delivers lines of two apps to it, each app's lines under
// the drain's one token followed by /<app>.
func TestNamespaceDrain(t *testing.T) {
	startManager(t, Config{})
	ns, other := newNamespace(t), newNamespace(t)
	ctx := context.Background()
	sink := drainpeer.NewSyslogSinkAt(t, "127.0.0.2:0", nil)

	create(t, newApp(ns, "web"), newApp(other, "elsewhere"))
	all := namespaceDrain(ns, "everything", "syslog://"+sink.Addr, &metav1.LabelSelector{})
	create(t, all)
	allID := routes.ID(ns, all.Name)
	waitDrainApps(t, allID, routes.ID(ns, "web"))
	waitStatusApps(t, all, 1)

	// An app created after the drain joins it; one of another namespace never does.
	worker := newApp(ns, "worker")
	worker.Labels = map[string]string{"tier": "backend"}
	create(t, worker)
	tb := waitDrainApps(t, allID, routes.ID(ns, "web"), routes.ID(ns, "worker"))
	waitStatusApps(t, all, 2)
	get(t, all)
	for _, a := range tb.Apps {
		for _, d := range a.Drains {
			if routes.DrainID(d.ID) == allID && d.Token != all.Status.Token+"/"+strings.TrimPrefix(a.ID, ns+"/") {
				t.Errorf("%s carries token %q, want the drain's %q then /<app>", a.ID, d.Token, all.Status.Token)
			}
		}
	}

	// A label selector narrows, and follows the apps' labels.
	backend := namespaceDrain(ns, "backend", "syslog://"+sink.Addr, &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "backend"}})
	create(t, backend)
	waitDrainApps(t, routes.ID(ns, backend.Name), routes.ID(ns, "worker"))
	waitStatusApps(t, backend, 1)
	web := newApp(ns, "web")
	get(t, web)
	patch := client.MergeFrom(web.DeepCopy())
	web.Labels = map[string]string{"tier": "backend"}
	if err := k8s.Patch(ctx, web, patch); err != nil {
		t.Fatal(err)
	}
	waitDrainApps(t, routes.ID(ns, backend.Name), routes.ID(ns, "web"), routes.ID(ns, "worker"))
	waitStatusApps(t, backend, 2)

	// Lines from two apps reach the drain through a router running the table.
	tb, err := readTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	d := dispatch.New(dispatch.Options{Metrics: m, Logger: slog.New(slog.DiscardHandler),
		Dialer: &drain.Dialer{Policy: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}})
	if err := d.Apply(tb); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ingest.NewHTTP(d, ingest.Limits{}, m, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	for _, app := range []string{"web", "worker"} {
		a := newApp(ns, app)
		get(t, a)
		tok := string(tokenSecret(t, a).Data[kubeplexv1alpha1.TokenSecretKey])
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/logs",
			strings.NewReader(string(wire.AppendFrame(nil, []byte("<190>1 2026-11-25T10:00:00Z h app web.1 - - hello from "+app)))))
		req.Header.Set("Content-Type", wire.ContentType)
		req.SetBasicAuth("token", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // the status is the answer
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /logs for %s: %s", app, resp.Status)
		}
	}
	// Both drains get both lines (backend covers both apps now): four frames.
	got := map[string]bool{}
	for _, msg := range sink.WaitFor(t, 4) {
		got[msg.Hostname+" "+string(msg.Text)] = true
	}
	for _, want := range []string{all.Status.Token + "/web hello from web", all.Status.Token + "/worker hello from worker",
		backend.Status.Token + "/web hello from web", backend.Status.Token + "/worker hello from worker"} {
		if !got[want] {
			t.Errorf("drain did not get %q; got %v", want, got)
		}
	}
	d.Shutdown(ctx)

	// A deleted app leaves every drain that covered it.
	if err := k8s.Delete(ctx, newApp(ns, "worker")); err != nil {
		t.Fatal(err)
	}
	waitDrainApps(t, allID, routes.ID(ns, "web"))
	waitStatusApps(t, all, 1)
	waitDrainApps(t, routes.ID(ns, backend.Name), routes.ID(ns, "web"))
	waitStatusApps(t, backend, 1)
}

// TestNamespaceDrainValidation: exactly one of appRef and appSelector; a drain does
// not switch between them; the selector itself may change.
func TestNamespaceDrainValidation(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	neither := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "neither"},
		Spec: kubeplexv1alpha1.LogDrainSpec{URL: "syslog://logs.example.test:514"}}
	both := newDrain(ns, "both", "web", "syslog://logs.example.test:514")
	both.Spec.AppSelector = &metav1.LabelSelector{}
	for _, d := range []*kubeplexv1alpha1.LogDrain{neither, both} {
		if err := k8s.Create(ctx, d); err == nil || !strings.Contains(err.Error(), "exactly one of appRef and appSelector") {
			t.Errorf("create %s: %v, want refused", d.Name, err)
		}
	}
	ns1 := namespaceDrain(ns, "ns1", "syslog://logs.example.test:514", &metav1.LabelSelector{})
	create(t, ns1)
	patch := client.MergeFrom(ns1.DeepCopy())
	ns1.Spec.AppSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}
	if err := k8s.Patch(ctx, ns1, patch); err != nil {
		t.Errorf("changing the selector: %v", err)
	}
	patch = client.MergeFrom(ns1.DeepCopy())
	ns1.Spec.AppSelector = nil
	ns1.Spec.AppRef = kubeplexv1alpha1.AppReference{Name: "web"}
	if err := k8s.Patch(ctx, ns1, patch); err == nil || !strings.Contains(err.Error(), "cannot switch between appRef and appSelector") {
		t.Errorf("switching to appRef: %v, want refused", err)
	}
	one := newDrain(ns, "one", "web", "syslog://logs.example.test:514")
	create(t, one)
	patch = client.MergeFrom(one.DeepCopy())
	one.Spec.AppRef = kubeplexv1alpha1.AppReference{}
	one.Spec.AppSelector = &metav1.LabelSelector{}
	if err := k8s.Patch(ctx, one, patch); err == nil || !strings.Contains(err.Error(), "cannot switch") {
		t.Errorf("switching to appSelector: %v, want refused", err)
	}
}

// TestNamespaceDrainPlatformLines: a namespace-wide drain gets what an app-bound drain
// gets, in each covered app's stream: kubeplex[api] lines when it is created, changed
// and deleted, and kubeplex[router] failing/recovered lines naming the token that
// app's lines carry (docs/sources.md); apps of other namespaces hear nothing.
func TestNamespaceDrainPlatformLines(t *testing.T) {
	fr := &fakeRouter{rep: routing.RouterStatus{Router: "router-0", Started: time.Now().Add(time.Minute), Version: "v"}}
	srv := httptest.NewServer(fr)
	defer srv.Close()
	lines := newPlatformReceiver(t)
	startManager(t, Config{RouterStatusURLs: []string{srv.URL + "/status"}, RouterStatusInterval: 100 * time.Millisecond,
		PlatformURL: lines.URL + "/logs"})
	ns, other := newNamespace(t), newNamespace(t)
	apps := []string{"web", "worker"}
	// instances is what the router reports: both drains run for every covered app (so
	// a drain's lines are not held for the router to run it: AnnounceWait is a
	// minute, as long as the test's waits), and "everything" has delivery status ds.
	instances := func(ds routing.DrainStatus) {
		fr.mu.Lock()
		defer fr.mu.Unlock()
		fr.rep.Drains = map[string]routing.DrainStatus{}
		for _, app := range apps {
			fr.rep.Drains[routes.InstanceID(routes.ID(ns, "probe"), app)] = routing.DrainStatus{}
			fr.rep.Drains[routes.InstanceID(routes.ID(ns, "everything"), app)] = ds
		}
	}
	instances(routing.DrainStatus{})
	create(t, newApp(ns, "web"), newApp(ns, "worker"), newApp(other, "elsewhere"))
	// The manager's cache has both apps Ready once a first drain counts them.
	probe := namespaceDrain(ns, "probe", "syslog://127.0.0.2:514", &metav1.LabelSelector{})
	create(t, probe)
	waitStatusApps(t, probe, 2)

	d := namespaceDrain(ns, "everything", "syslog://127.0.0.2:514", &metav1.LabelSelector{})
	create(t, d)
	waitStatusApps(t, d, 2)
	// want waits until each covered app has exactly one line starting with text.
	want := func(what, text string, per func(app string) string) {
		t.Helper()
		testenv.Eventually(t, what, func() error {
			got := lines.got()
			for _, app := range apps {
				prefix := ns + "/" + app + " " + text
				if per != nil {
					prefix = ns + "/" + app + " " + per(app)
				}
				if n := len(slices.DeleteFunc(slices.Clone(got), func(l string) bool { return !strings.HasPrefix(l, prefix) })); n != 1 {
					return fmt.Errorf("%d lines %q in %q", n, prefix, got)
				}
			}
			return nil
		})
	}
	want("created lines", "kubeplex[api] LogDrain everything created for every app of the namespace (syslog://127.0.0.2:514)", nil)

	// Delivery: both instances deliver, then fail, then recover.
	t1 := time.Now().UTC().Truncate(time.Second)
	instances(routing.DrainStatus{Delivered: 5, LastSuccess: &t1})
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionTrue, kubeplexv1alpha1.DeliveredReason)
	t2 := t1.Add(time.Minute)
	instances(routing.DrainStatus{Delivered: 5, LastSuccess: &t1, LastError: "dial tcp 127.0.0.2:514: connection refused", LastErrorTime: &t2})
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionFalse, kubeplexv1alpha1.DeliveryFailedReason)
	want("failing lines", "", func(app string) string {
		return "kubeplex[router] Drain " + routes.InstanceToken(d.Status.Token, app) + " failing: dial tcp 127.0.0.2:514: connection refused"
	})
	t3 := t2.Add(time.Second)
	instances(routing.DrainStatus{Delivered: 6, LastSuccess: &t3, LastError: "old", LastErrorTime: &t2})
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionTrue, kubeplexv1alpha1.DeliveredReason)
	want("recovered lines", "", func(app string) string {
		return "kubeplex[router] Drain " + routes.InstanceToken(d.Status.Token, app) + " recovered"
	})

	get(t, d)
	d.Spec.URL = "syslog://127.0.0.3:514"
	if err := k8s.Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	want("changed lines", "kubeplex[api] LogDrain everything changed spec.url (now syslog://127.0.0.3:514)", nil)
	if err := k8s.Delete(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	want("deleted lines", "kubeplex[api] LogDrain everything deleted", nil)
	for _, l := range lines.got() {
		if strings.HasPrefix(l, other+"/") && strings.Contains(l, "LogDrain") {
			t.Errorf("an app of another namespace was told: %q", l)
		}
	}
}
