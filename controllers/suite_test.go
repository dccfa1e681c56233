package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

const (
	systemNS   = "kubeplex-system"
	routesName = "kubeplex-routes"
)

var (
	testCluster *testenv.Cluster
	cfg         *rest.Config
	k8s         client.Client
	scheme      = testenv.Scheme()
	nsCounter   atomic.Int32
)

func TestMain(m *testing.M) {
	cluster, err := testenv.StartCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testCluster, cfg, k8s = cluster, cluster.Config, cluster.Client
	code := func() int {
		defer func() { _ = cluster.Stop() }()
		if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// testPolicy is the URL policy of the test managers: the defaults, the API server
// refused, 127.0.0.2 and the name allowed.test allowlisted.
func testPolicy(t *testing.T) *egress.Policy {
	t.Helper()
	eps, err := egress.Endpoints(context.Background(), cfg.Host, nil)
	if err != nil {
		t.Fatal(err)
	}
	allow, hosts, err := egress.ParseList("127.0.0.2/32,allowed.test")
	if err != nil {
		t.Fatal(err)
	}
	return &egress.Policy{Allow: allow, AllowHosts: hosts, DenyEndpoints: eps, Resolver: filesOnlyResolver}
}

// filesOnlyResolver is Go's resolver with DNS cut off: names resolve from /etc/hosts
// (localhost) and nothing else, so tests send no DNS queries off the machine.
var filesOnlyResolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("tests make no DNS queries")
}}

// testManager is a running manager: its log output and its (cached) client.
type testManager struct {
	logs   *testenv.SyncBuffer
	client client.Client
}

// startManager runs the reconcilers in a manager of their own, with c filled in
// where the test left it empty, until the test ends. One manager runs at a time.
func startManager(t *testing.T, c Config) testManager {
	t.Helper()
	return startManagerWith(t, cfg, c)
}

// startManagerWith is startManager with a REST config of the test's own (one that
// counts requests, say).
func startManagerWith(t *testing.T, rc *rest.Config, c Config) testManager {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	if c.Namespace == "" {
		c.Namespace = systemNS
	}
	if c.RoutesSecret == "" {
		c.RoutesSecret = routesName
	}
	if c.Policy == nil {
		c.Policy = testPolicy(t)
	}
	if c.TokenGracePeriod == 0 {
		c.TokenGracePeriod = time.Hour
	}
	if c.RoutesWriteInterval == 0 {
		c.RoutesWriteInterval = -1
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 zap.New(zap.WriteTo(logs), zap.Level(zapcore.DebugLevel)),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(),
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := Setup(ctx, mgr, c); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		if t.Failed() && os.Getenv("SHOW_MANAGER_LOG") != "" {
			t.Logf("manager log:\n%s", logs.String())
		}
	})
	return testManager{logs: logs, client: mgr.GetClient()}
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%02d-%s", nsCounter.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-")
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func get(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
}

func create(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func newApp(ns, name string) *kubeplexv1alpha1.LogApp {
	return &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func newDrain(ns, name, app, url string) *kubeplexv1alpha1.LogDrain {
	return &kubeplexv1alpha1.LogDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: app}, URL: url},
	}
}

// condition waits until obj's condition typ has status and reason for the current
// generation, and returns it.
func condition(t *testing.T, obj client.Object, typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	testenv.Eventually(t, fmt.Sprintf("%s %s=%s/%s", obj.GetName(), typ, status, reason), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *kubeplexv1alpha1.LogApp:
			conds = o.Status.Conditions
		case *kubeplexv1alpha1.LogDrain:
			conds = o.Status.Conditions
		}
		c := meta.FindStatusCondition(conds, typ)
		if c == nil {
			return fmt.Errorf("no %s condition", typ)
		}
		if c.Status != status || c.Reason != reason || c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("%s=%s reason %s gen %d/%d: %s", typ, c.Status, c.Reason, c.ObservedGeneration, obj.GetGeneration(), c.Message)
		}
		got = *c
		return nil
	})
	return got
}

// readTable reads and joins the routing-table shards.
func readTable(ctx context.Context) (*routing.Table, error) {
	var s0 corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0); err != nil {
		return nil, err
	}
	n, err := routing.ShardCount(s0.Data[routing.SecretKey])
	if err != nil {
		return nil, err
	}
	shards := [][]byte{s0.Data[routing.SecretKey]}
	for i := 1; i < n; i++ {
		var s corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routing.ShardName(routesName, i)}, &s); err != nil {
			return nil, err
		}
		shards = append(shards, s.Data[routing.SecretKey])
	}
	return routing.Join(shards)
}

// tableApp waits until the routing table's entry for app satisfies ok.
func tableApp(t *testing.T, id string, ok func(*routing.App) error) {
	t.Helper()
	testenv.Eventually(t, "routing table entry "+id, func() error {
		tb, err := readTable(context.Background())
		if err != nil {
			return err
		}
		for _, a := range tb.Apps {
			if a.ID == id {
				return ok(&a)
			}
		}
		return ok(nil)
	})
}

func drainIDs(a *routing.App) []string {
	if a == nil {
		return nil
	}
	var out []string
	for _, d := range a.Drains {
		out = append(out, d.ID)
	}
	return out
}

// assertNoLeak checks that no secret appears in the manager's logs, in any Event of
// the namespace or in the status of any LogApp or LogDrain there.
func assertNoLeak(t *testing.T, logs *testenv.SyncBuffer, ns string, secrets map[string]string) {
	t.Helper()
	ctx := context.Background()
	var evs eventsv1.EventList
	if err := k8s.List(ctx, &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var apps kubeplexv1alpha1.LogAppList
	var drains kubeplexv1alpha1.LogDrainList
	if err := k8s.List(ctx, &apps, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if err := k8s.List(ctx, &drains, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	statuses := make([]any, 0, len(apps.Items)+len(drains.Items))
	for _, a := range apps.Items {
		statuses = append(statuses, a.Status)
	}
	for _, d := range drains.Items {
		statuses = append(statuses, d.Status)
	}
	st, _ := json.Marshal(statuses)
	ev, _ := json.Marshal(evs.Items)
	places := map[string]string{"manager logs": logs.String(), "events": string(ev), "status": string(st)}
	if len(evs.Items) == 0 {
		t.Errorf("no Events in namespace %s: the leak check would be empty", ns)
	}
	for what, secret := range secrets {
		if len(secret) < 6 {
			t.Fatalf("secret %s too short to grep for", what)
		}
		for where, text := range places {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in the %s", what, where)
			}
		}
	}
}

// eventReasons lists the reasons of the Events about one object.
func eventReasons(t *testing.T, obj client.Object) []string {
	t.Helper()
	var evs eventsv1.EventList
	if err := k8s.List(context.Background(), &evs, client.InNamespace(obj.GetNamespace())); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		if e.Regarding.Name == obj.GetName() && e.Regarding.UID == obj.GetUID() {
			out = append(out, e.Reason)
		}
	}
	return out
}

// waitEvents waits until Events with each of the reasons exist for obj (the recorder
// sends them asynchronously).
func waitEvents(t *testing.T, obj client.Object, reasons ...string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("events %v for %s", reasons, obj.GetName()), func() error {
		got := eventReasons(t, obj)
		for _, r := range reasons {
			if !slices.Contains(got, r) {
				return fmt.Errorf("have %v", got)
			}
		}
		return nil
	})
}
