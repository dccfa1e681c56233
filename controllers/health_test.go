package controllers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// fakeRouter serves GET /status like a router, from a report the test changes.
type fakeRouter struct {
	mu     sync.Mutex
	rep    routing.RouterStatus
	served int // /status answers given
}

func (f *fakeRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/status" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.served++
	_ = json.NewEncoder(w).Encode(f.rep)
}

// polled waits until the manager has read the current report: two answers after
// this call began mean at least one whole poll round saw it.
func (f *fakeRouter) polled(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	from := f.served
	f.mu.Unlock()
	testenv.Eventually(t, "router status polled", func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.served < from+2 {
			return fmt.Errorf("%d answers since", f.served-from)
		}
		return nil
	})
}

func (f *fakeRouter) set(id string, ds routing.DrainStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rep.Drains = map[string]routing.DrainStatus{id: ds}
}

// TestDeliveringFromRouterReports: the manager reads a router's /status and writes Delivering, counters and
// the redacted last error into the drain's status; counter-only changes wait for the
// status interval, state changes do not.
func TestDeliveringFromRouterReports(t *testing.T) {
	fr := &fakeRouter{rep: routing.RouterStatus{Router: "router-0", Started: time.Now().Add(time.Minute), Version: "v"}}
	srv := httptest.NewServer(fr)
	defer srv.Close()
	lines := newPlatformReceiver(t)
	m := startManager(t, Config{RouterStatusURLs: []string{srv.URL + "/status"}, RouterStatusInterval: 100 * time.Millisecond,
		PlatformURL: lines.URL + "/logs"})
	ns := newNamespace(t)
	create(t, newApp(ns, "web"))
	d := newDrain(ns, "sink", "web", "syslog://127.0.0.2:514")
	create(t, d)
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionUnknown, kubeplexv1alpha1.NoRouterReportReason)
	id := routes.ID(ns, "sink")

	fr.set(id, routing.DrainStatus{})
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionUnknown, kubeplexv1alpha1.NoTrafficReason)

	t1 := time.Now().UTC().Truncate(time.Second)
	fr.set(id, routing.DrainStatus{Delivered: 10, Dropped: 1, LastSuccess: &t1})
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionTrue, kubeplexv1alpha1.DeliveredReason)
	if d.Status.Delivered != 10 || d.Status.Dropped != 1 || d.Status.LastDeliveryTime == nil || !d.Status.LastDeliveryTime.Time.Equal(t1) {
		t.Fatalf("status delivered %d dropped %d last %v, want 10 1 %v", d.Status.Delivered, d.Status.Dropped, d.Status.LastDeliveryTime, t1)
	}

	// Counters move, the state does not: nothing is written within the interval. A
	// watch from here sees every write of the drain; the failure below is a write
	// that must come, so anything the watch delivers before it was a counter write.
	watcher, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.Watch(t.Context(), &kubeplexv1alpha1.LogDrainList{}, client.InNamespace(ns),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: d.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for i := range 20 {
		t2 := t1.Add(time.Duration(i+1) * time.Second)
		fr.set(id, routing.DrainStatus{Delivered: int64(20 + i), Dropped: 1, LastSuccess: &t2})
		fr.polled(t)
	}

	// A failure is a state change: written at once, with the error redacted.
	const password, token = "s3cret-drain-pw", "t.6f1c7a52-1d6e-4f6b-9d8e-2b1b7c0e9a11"
	t3 := t1.Add(time.Minute)
	lastOK := t1.Add(20 * time.Second)
	fr.set(id, routing.DrainStatus{Delivered: 40, Dropped: 7, LastSuccess: &lastOK,
		LastError: "dial tcp: https://bob:" + password + "@203.0.113.9/x refused (token " + token + ")", LastErrorTime: &t3})
	c := condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionFalse, kubeplexv1alpha1.DeliveryFailedReason)
	sawFailure := false
	for ev := range w.ResultChan() {
		got, ok := ev.Object.(*kubeplexv1alpha1.LogDrain)
		if !ok || got.Name != d.Name {
			continue
		}
		if got.Status.Delivered != 40 {
			t.Fatalf("a write before the failure (%s, delivered %d): counter-only changes were written within the status interval", ev.Type, got.Status.Delivered)
		}
		sawFailure = true // the failure's write, the first since the watch began
		break
	}
	if !sawFailure {
		t.Fatal("the watch ended before it delivered the failure's write")
	}
	if d.Status.Delivered != 40 || d.Status.Dropped != 7 || !strings.Contains(d.Status.LastError, "refused") {
		t.Errorf("after failure: delivered %d dropped %d lastError %q", d.Status.Delivered, d.Status.Dropped, d.Status.LastError)
	}
	if strings.Contains(c.Message+d.Status.LastError, password) || strings.Contains(c.Message+d.Status.LastError, token) {
		t.Errorf("status holds a secret: %q / %q", c.Message, d.Status.LastError)
	}

	// Recovery is a state change too.
	t4 := t3.Add(time.Second)
	fr.set(id, routing.DrainStatus{Delivered: 41, Dropped: 7, LastSuccess: &t4, LastError: "old", LastErrorTime: &t3})
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionTrue, kubeplexv1alpha1.DeliveredReason)
	waitEvents(t, d, kubeplexv1alpha1.DeliveryFailedReason, kubeplexv1alpha1.DeliveredReason)
	// Both state changes reach the app's stream once, as kubeplex[router], redacted.
	failing := ns + "/web kubeplex[router] Drain " + d.Status.Token + " failing: dial tcp: https://REDACTED@203.0.113.9/x refused"
	recovered := ns + "/web kubeplex[router] Drain " + d.Status.Token + " recovered"
	testenv.Eventually(t, "failing and recovered lines", func() error {
		got := lines.got()
		nf := len(slices.DeleteFunc(slices.Clone(got), func(l string) bool { return !strings.HasPrefix(l, failing) }))
		nr := len(slices.DeleteFunc(slices.Clone(got), func(l string) bool { return l != recovered }))
		if nf != 1 || nr != 1 {
			return fmt.Errorf("%d failing, %d recovered lines in %q", nf, nr, got)
		}
		return nil
	})
	for _, l := range lines.got() {
		if strings.Contains(l, password) || strings.Contains(l, token) {
			t.Errorf("platform line holds a secret: %q", l)
		}
	}

	// The router goes away: nobody reports the drain.
	srv.Close()
	condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionUnknown, kubeplexv1alpha1.NoRouterReportReason)
	assertNoLeak(t, m.logs, ns, map[string]string{"drain password": password, "ingest token": token})
}

// TestRouterDiscovery: router pods are found through the EndpointSlices of the router
// Service (ready endpoints, the named port), next to the static URLs.
func TestRouterDiscovery(t *testing.T) {
	slice := func(name, svc string, ready bool, addrs ...string) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: systemNS, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}},
			Ports: []discoveryv1.EndpointPort{
				{Name: ptr.To("syslog"), Port: ptr.To(int32(6514)), Protocol: ptr.To(corev1.ProtocolTCP)},
				{Name: ptr.To("http"), Port: ptr.To(int32(8080)), Protocol: ptr.To(corev1.ProtocolTCP)},
			},
		}
	}
	objs := []*discoveryv1.EndpointSlice{
		slice("router-a", "kubeplex-router", true, "10.244.0.5", "10.244.0.6"),
		slice("router-b", "kubeplex-router", false, "10.244.0.7"),
		slice("other", "something-else", true, "10.244.0.8"),
	}
	for _, o := range objs {
		create(t, o)
		defer func() { _ = k8s.Delete(t.Context(), o) }()
	}
	disc := &health.EndpointSliceDiscovery{Reader: k8s, Namespace: systemNS, Service: "kubeplex-router", PortName: "http",
		Static: []string{"http://127.0.0.1:9/status"}}
	got, err := disc.Discover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{"http://10.244.0.5:8080/status", "http://10.244.0.6:8080/status", "http://127.0.0.1:9/status"}
	if !slices.Equal(got, want) {
		t.Errorf("discovered %v, want %v", got, want)
	}
}

// TestDeliveringAgreesWithReady: a drain that waits for its credentials Secret is not
// in the routing table, and Delivering says so; once the Secret comes and Ready says
// the drain is in the table, Delivering no longer says it is not (it waits for a
// router's report), though no router has reported either time.
func TestDeliveringAgreesWithReady(t *testing.T) {
	fr := &fakeRouter{rep: routing.RouterStatus{Router: "router-0", Started: time.Now(), Version: "v"}}
	srv := httptest.NewServer(fr)
	defer srv.Close()
	startManager(t, Config{RouterStatusURLs: []string{srv.URL + "/status"}, RouterStatusInterval: 100 * time.Millisecond})
	ns := newNamespace(t)
	create(t, newApp(ns, "web"))
	d := newDrain(ns, "creds", "web", "https://203.0.113.7/logs")
	d.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: "drain-creds"}
	create(t, d)
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.SecretNotFoundReason)
	c := condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionUnknown, kubeplexv1alpha1.NotRoutedReason)
	if !strings.Contains(c.Message, "not in the routing table") {
		t.Errorf("Delivering of a drain that is not Ready: %q", c.Message)
	}

	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drain-creds", Labels: map[string]string{kubeplexv1alpha1.DrainCredentialsLabel: "true"}},
		StringData: map[string]string{"username": "u", "password": "p"},
	})
	ready := condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	c = condition(t, d, kubeplexv1alpha1.DeliveringCondition, metav1.ConditionUnknown, kubeplexv1alpha1.NoRouterReportReason)
	if strings.Contains(c.Message, "not in the routing table") || !strings.Contains(ready.Message, "in the routing table") {
		t.Errorf("conditions disagree: Ready %q, Delivering %q", ready.Message, c.Message)
	}
}

// TestDrainAddedWaitsForRouters: the "Drain … added" line is posted only once the
// routers report running the drain, so the new drain receives its own line (a line
// reaches the drains its router runs when it arrives); the app's other lines are not
// held by other apps.
func TestDrainAddedWaitsForRouters(t *testing.T) {
	fr := &fakeRouter{rep: routing.RouterStatus{Router: "router-0", Started: time.Now().Add(time.Minute), Version: "v"}}
	srv := httptest.NewServer(fr)
	defer srv.Close()
	lines := newPlatformReceiver(t)
	startManager(t, Config{RouterStatusURLs: []string{srv.URL + "/status"}, RouterStatusInterval: 100 * time.Millisecond,
		PlatformURL: lines.URL + "/logs"})
	ns := newNamespace(t)
	create(t, newApp(ns, "web"))
	d := newDrain(ns, "sink", "web", "syslog://127.0.0.2:514")
	create(t, d)
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	id := routes.ID(ns, "sink")
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 {
			return fmt.Errorf("drain not in the stored table: %+v", a)
		}
		return nil
	})
	added := ns + "/web kubeplex[router] Drain " + d.Status.Token + " added (syslog://127.0.0.2:514)"
	// The table with the drain is stored, the router does not run it yet: two poll
	// rounds later the line is still held. Another app's line goes meanwhile.
	create(t, newApp(ns, "other"))
	testenv.Eventually(t, "the other app's line", func() error {
		if !slices.ContainsFunc(lines.got(), func(l string) bool { return strings.HasPrefix(l, ns+"/other kubeplex[api] LogApp other created") }) {
			return fmt.Errorf("lines %q", lines.got())
		}
		return nil
	})
	fr.polled(t)
	if slices.Contains(lines.got(), added) {
		t.Fatalf("posted before any router ran the drain: %q", lines.got())
	}
	fr.set(id, routing.DrainStatus{})
	testenv.Eventually(t, "the added line once the router runs the drain", func() error {
		if n := countLine(lines.got(), added); n != 1 {
			return fmt.Errorf("%d copies of %q in %q", n, added, lines.got())
		}
		return nil
	})
}

func countLine(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}
