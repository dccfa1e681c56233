package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// manyDrains renders apps × perApp drains, each with credentials and a signing key.
func manyDrains(apps, perApp int) *routing.Table {
	var in routes.Input
	for a := range apps {
		ns, uid := fmt.Sprintf("team-%03d", a), types.UID(fmt.Sprintf("app-%d", a))
		in.Apps = append(in.Apps, kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", UID: uid},
			Spec: kubeplexv1alpha1.LogAppSpec{HistorySize: 1500, CollectorMode: kubeplexv1alpha1.CollectorExec}})
		in.Secrets = append(in.Secrets, corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app" + kubeplexv1alpha1.TokenSecretSuffix,
				OwnerReferences: []metav1.OwnerReference{{UID: uid, Controller: ptr.To(true)}}},
			Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: fmt.Appendf(nil, "t.%08d-0000-4000-8000-000000000000", a)}})
		for d := range perApp {
			name, duid := fmt.Sprintf("drain-%04d", d), types.UID(fmt.Sprintf("drain-%d-%d", a, d))
			in.Drains = append(in.Drains, kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: duid}})
			acc, _ := json.Marshal(routes.AcceptedDrain{App: "app", URL: fmt.Sprintf("https://logs-%d.example.com/ingest/%s", d, ns),
				Username: "user", Password: fmt.Sprintf("password-%d-%d", a, d)})
			in.Secrets = append(in.Secrets, corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + kubeplexv1alpha1.DrainSecretSuffix,
					OwnerReferences: []metav1.OwnerReference{{UID: duid, Controller: ptr.To(true)}}},
				Data: map[string][]byte{
					kubeplexv1alpha1.DrainTokenSecretKey:   fmt.Appendf(nil, "d.%08d-%04d-4000-8000-000000000000", a, d),
					kubeplexv1alpha1.DrainHMACKeySecretKey: fmt.Appendf(nil, "%064x", a*100000+d),
					kubeplexv1alpha1.DrainConfigSecretKey:  acc,
				}})
		}
	}
	return routes.Render(in).Table
}

func readShards(t *testing.T, base string) (*routing.Table, []corev1.Secret) {
	t.Helper()
	var l corev1.SecretList
	if err := k8s.List(context.Background(), &l, client.InNamespace(systemNS)); err != nil {
		t.Fatal(err)
	}
	byName := map[string]corev1.Secret{}
	for _, s := range l.Items {
		byName[s.Name] = s
	}
	s0, ok := byName[base]
	if !ok {
		t.Fatalf("no shard 0 (%s)", base)
	}
	n, err := routing.ShardCount(s0.Data[routing.SecretKey])
	if err != nil {
		t.Fatal(err)
	}
	secs := make([]corev1.Secret, 0, n)
	raw := make([][]byte, 0, n)
	for i := range n {
		s, ok := byName[routing.ShardName(base, i)]
		if !ok {
			t.Fatalf("shard %d missing", i)
		}
		secs = append(secs, s)
		raw = append(raw, s.Data[routing.SecretKey])
	}
	if _, extra := byName[routing.ShardName(base, n)]; extra {
		t.Errorf("stale shard %s left behind", routing.ShardName(base, n))
	}
	tb, err := routing.Join(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tb, secs
}

// TestStoreTenThousandDrains writes a 10,000-drain table to the API server: it is
// sharded below the Secret limit, shard 0 is written last, an unchanged table writes
// nothing, and a smaller table deletes the shards it no longer needs.
func TestStoreTenThousandDrains(t *testing.T) {
	ctx := context.Background()
	const base = "bulk-routes"
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	var before corev1.SecretList
	if err := k8s.List(ctx, &before, client.InNamespace(systemNS)); err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &corev1.SecretList{}, client.InNamespace(systemNS),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: before.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	start := time.Now()
	big := manyDrains(100, 100)
	rendered := time.Since(start)
	store := &routes.Store{Client: k8s, Namespace: systemNS, Base: base}
	res, err := store.Write(ctx, big)
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	if res.Shards < 2 || res.Written != res.Shards {
		t.Fatalf("wrote %d of %d shards; 10,000 drains should need several", res.Written, res.Shards)
	}
	t.Logf("10,000 drains: rendered in %v, rendered+stored in %v; %d shards, sizes %v", rendered, total, res.Shards, res.Sizes)
	got, secs := readShards(t, base)
	if got.Version != big.Version || !reflect.DeepEqual(got.Apps, big.Apps) {
		t.Fatal("table read back from the shards differs")
	}
	for _, s := range secs {
		if n := len(s.Data[routing.SecretKey]); n > routes.DefaultMaxShardBytes {
			t.Errorf("shard %s holds %d bytes", s.Name, n)
		}
	}
	var order []string
	for range res.Shards {
		select {
		case ev := <-w.ResultChan():
			order = append(order, ev.Object.(*corev1.Secret).Name)
		case <-time.After(testenv.WaitTimeout):
			t.Fatalf("watch saw only %v", order)
		}
	}
	if order[len(order)-1] != base {
		t.Errorf("write order %v: shard 0 must come last", order)
	}
	// Its own writes are known as its own (the controller drops their events); a
	// write by anyone else is not.
	for _, sec := range secs {
		if !store.OwnWrite(&sec) {
			t.Errorf("shard %s as the Store wrote it (resourceVersion %s) is not its own write", sec.Name, sec.ResourceVersion)
		}
	}
	edited := secs[len(secs)-1].DeepCopy()
	edited.Annotations["someone"] = "else"

	if err := k8s.Update(ctx, edited); err != nil {
		t.Fatal(err)
	}
	if store.OwnWrite(edited) {
		t.Errorf("shard %s edited by someone else counts as the Store's own write", edited.Name)
	}

	limited := &routes.Store{Client: k8s, Namespace: systemNS, Base: "limited-routes", MaxShards: 2}
	if res, err := limited.Write(ctx, big); !errors.Is(err, routes.ErrTooManyShards) || res.Written != 0 {
		t.Errorf("table over the shard limit: %+v %v, want ErrTooManyShards and nothing written", res, err)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: "limited-routes"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("over-limit table written: %v", err)
	}

	again, err := store.Write(ctx, big)
	if err != nil || again.Changed() {
		t.Fatalf("rewriting the same table: %+v %v, want no writes", again, err)
	}

	small := manyDrains(2, 3)
	res, err = store.Write(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	if res.Shards != 1 || res.Deleted != len(secs)-1 {
		t.Fatalf("smaller table: %+v, want 1 shard and %d deleted", res, len(secs)-1)
	}
	got, _ = readShards(t, base)
	if got.Version != small.Version {
		t.Fatal("small table not stored")
	}
	for i := 1; i < len(secs); i++ {
		err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routing.ShardName(base, i)}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("stale shard %d: %v", i, err)
		}
	}
}

// TestRoutesRepaired: a hand-edited or deleted routing Secret is rewritten.
func TestRoutesRepaired(t *testing.T) {
	startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	create(t, newApp(ns, "web"))
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil {
			return fmt.Errorf("not in table")
		}
		return nil
	})
	var s corev1.Secret
	// The manager rewrites the table whenever any test's objects change: edit the
	// version we read, again if it moved meanwhile.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s); err != nil {
			return err
		}
		s.Data[routing.SecretKey] = []byte(`{"version":"forged","shard":0,"shards":1,"apps":[]}`)
		return k8s.Update(ctx, &s)
	}); err != nil {
		t.Fatal(err)
	}
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil {
			return fmt.Errorf("edited table not repaired")
		}
		return nil
	})
	if err := k8s.Delete(ctx, &s); err != nil {
		t.Fatal(err)
	}
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil {
			return fmt.Errorf("deleted table not recreated")
		}
		return nil
	})
}
