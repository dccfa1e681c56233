package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestTenThousandDrainObjects applies 100 LogApps with 100 LogDrains each to the API
// server and waits until the manager has every drain in the sharded routing table.
// Load is bounded: 10,100 creates from 8 workers, one wait with a deadline.
func TestTenThousandDrainObjects(t *testing.T) {
	const apps, perApp, workers = 100, 100, 8
	if testing.Short() {
		t.Skip("-short: skipping the 10,000-object run (about 3 minutes); TestStoreTenThousandDrains still covers rendering and sharding 10,000 drains")
	}
	counted := rest.CopyConfig(cfg)
	reqs := &requestCounter{}
	counted.Wrap(reqs.wrap)
	m := startManagerWith(t, counted, Config{RoutesWriteInterval: DefaultRoutesWriteInterval})
	ns := newNamespace(t)
	ctx := context.Background()

	start := time.Now()
	jobs := make(chan client.Object, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for o := range jobs {
				if err := k8s.Create(ctx, o); err != nil {
					errs <- fmt.Errorf("create %s: %w", o.GetName(), err)
					return
				}
			}
		})
	}
	for a := range apps {
		app := fmt.Sprintf("app-%02d", a)
		jobs <- newApp(ns, app)
		for d := range perApp {
			jobs <- newDrain(ns, fmt.Sprintf("%s-d%03d", app, d), app, fmt.Sprintf("syslog://203.0.%d.%d:514", a, d+1))
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	created := time.Since(start)

	var shards int
	testenv.EventuallyWithin(t, "every drain in the routing table", 5*time.Minute, func() error {
		tb, err := readTable(ctx)
		if err != nil {
			return err
		}
		n := 0
		for _, a := range tb.Apps {
			if strings.HasPrefix(a.ID, ns+"/") {
				n += len(a.Drains)
			}
		}
		if n != apps*perApp {
			return fmt.Errorf("after %v the table holds %d of %d drains", time.Since(start), n, apps*perApp)
		}
		var s0 corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0); err != nil {
			return err
		}
		shards, err = routing.ShardCount(s0.Data[routing.SecretKey])
		return err
	})
	if shards < 2 {
		t.Errorf("10,000 drains in %d shard(s); expected the table to be split", shards)
	}
	t.Logf("10,000 LogDrains: created in %v, all in the routing table after %v, %d shards", created, time.Since(start), shards)
	t.Logf("manager's requests to the API server until then:\n%s", reqs)
	t.Logf("routing table writes: %d", strings.Count(m.logs.String(), "routing table stored"))

	// Once everything is reconciled, nothing is written. Proven without waiting: a
	// reconcile of every drain and of the table by reconcilers of our own must write
	// nothing, and neither may the manager meanwhile. Until the manager has settled,
	// the state moves during the pass and the pass is tried again.
	drains := &LogDrainReconciler{Client: m.client, APIReader: k8s, Recorder: discardRecorder{}, Policy: testPolicy(t)}
	table := &RoutesReconciler{Client: m.client,
		Store: &routes.Store{Client: m.client, Namespace: systemNS, Base: routesName}}
	testenv.EventuallyWithin(t, "a quiet cluster", 5*time.Minute, func() error {
		before, err := writeState(ctx, ns)
		if err != nil {
			return err
		}
		var l kubeplexv1alpha1.LogDrainList
		if err := m.client.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return err
		}
		notReady := 0
		for i := range l.Items {
			if !meta.IsStatusConditionTrue(l.Items[i].Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
				notReady++
			}
			if _, err := drains.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&l.Items[i])}); err != nil {
				return fmt.Errorf("reconcile %s: %w", l.Items[i].Name, err)
			}
		}
		if notReady > 0 {
			return fmt.Errorf("%d drains not Ready", notReady)
		}
		if _, err := table.Reconcile(ctx, ctrl.Request{}); err != nil {
			return err
		}
		after, err := writeState(ctx, ns)
		if err != nil {
			return err
		}
		if before != after {
			return errors.New("something was written during a reconcile of the unchanged objects")
		}
		return nil
	})
}

// writeState joins the resourceVersions of the routing table's first shard and of
// every drain in ns, read from the API server: it changes with any write to them.
func writeState(ctx context.Context, ns string) (string, error) {
	var s0 corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0); err != nil {
		return "", err
	}
	var all kubeplexv1alpha1.LogDrainList
	if err := k8s.List(ctx, &all, client.InNamespace(ns)); err != nil {
		return "", err
	}
	rvs := make([]string, 0, len(all.Items)+1)
	rvs = append(rvs, s0.ResourceVersion)
	for _, d := range all.Items {
		rvs = append(rvs, d.ResourceVersion)
	}
	return strings.Join(rvs, ","), nil
}

// requestCounter counts a client's requests to the API server by verb and resource,
// with the time they took: what the manager asks of the API server under load.
type requestCounter struct {
	mu    sync.Mutex
	count map[string]int
	took  map[string]time.Duration
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		key := req.Method + " " + resourceOf(req.URL.Path)
		if req.URL.Query().Get("watch") == "true" {
			key = "WATCH " + resourceOf(req.URL.Path)
		}
		c.mu.Lock()
		if c.count == nil {
			c.count, c.took = map[string]int{}, map[string]time.Duration{}
		}
		c.count[key]++
		c.took[key] += time.Since(start)
		c.mu.Unlock()
		return resp, err
	})
}

// resourceOf reduces an API path to its resource (and subresource): namespaces and
// names left out.
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var out []string
	for i := 0; i < len(parts); i++ {
		switch {
		case parts[i] == "namespaces" && i+1 < len(parts) && i+2 < len(parts):
			i++ // skip the namespace name
		case len(out) > 0 && isResource(out[len(out)-1]):
			out = append(out, "{name}") // what may follow is a subresource
		default:
			out = append(out, parts[i])
		}
	}
	return strings.Join(out, "/")
}

func isResource(s string) bool {
	switch s {
	case "secrets", "logdrains", "logapps", "events", "leases", "endpointslices":
		return true
	}
	return false
}

func (c *requestCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.count))
	for k := range c.count {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-70s %6d  mean %v\n", k, c.count[k], (c.took[k] / time.Duration(c.count[k])).Round(time.Microsecond))
	}
	return b.String()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
