package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
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
	m := startManager(t, Config{RoutesWriteInterval: DefaultRoutesWriteInterval})
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
	deadline := time.Now().Add(5 * time.Minute)
	for {
		tb, err := readTable(ctx)
		n := 0
		if err == nil {
			for _, a := range tb.Apps {
				if len(a.ID) > len(ns) && a.ID[:len(ns)+1] == ns+"/" {
					n += len(a.Drains)
				}
			}
		}
		if n == apps*perApp {
			var s0 corev1.Secret
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0); err != nil {
				t.Fatal(err)
			}
			if shards, err = routing.ShardCount(s0.Data[routing.SecretKey]); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the table holds %d of %d drains (%v)", time.Since(start), n, apps*perApp, err)
		}
		time.Sleep(time.Second)
	}
	if shards < 2 {
		t.Errorf("10,000 drains in %d shard(s); expected the table to be split", shards)
	}
	t.Logf("10,000 LogDrains: created in %v, all in the routing table after %v, %d shards", created, time.Since(start), shards)

	// Once everything is reconciled, nothing is written: the table and the drains
	// keep their resourceVersions while the manager keeps running.
	var quiet string
	testenv.Eventually(t, "a quiet cluster", func() error {
		var l kubeplexv1alpha1.LogDrainList
		if err := m.client.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return err
		}
		notReady := 0
		for _, d := range l.Items {
			if !meta.IsStatusConditionTrue(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
				notReady++
			}
		}
		if notReady > 0 {
			return fmt.Errorf("%d drains not Ready", notReady)
		}
		var s0 corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0); err != nil {
			return err
		}
		var all kubeplexv1alpha1.LogDrainList
		if err := k8s.List(ctx, &all, client.InNamespace(ns)); err != nil {
			return err
		}
		rvs := make([]string, 0, len(all.Items)+1)
		rvs = append(rvs, s0.ResourceVersion)
		for _, d := range all.Items {
			rvs = append(rvs, d.ResourceVersion)
		}
		state := strings.Join(rvs, ",")
		if state != quiet {
			quiet = state
			time.Sleep(3 * time.Second)
			return fmt.Errorf("still writing")
		}
		return nil
	})
}
