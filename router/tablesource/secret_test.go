package tablesource_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/tablesource"
)

const (
	ns   = "kubeplex-system"
	base = "kubeplex-routes"
)

// startAPIServer runs a real kube-apiserver and etcd and returns an admin client and a
// client for a user that may only get/list/watch the routing Secrets by name.
func startAPIServer(t *testing.T) (admin, router kubernetes.Interface) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make envtest` and export KUBEBUILDER_ASSETS=bin/k8s/1.37.2 (the Makefile does)")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Fatalf("no kube-apiserver in KUBEBUILDER_ASSETS=%s: %v", assets, err)
	}
	env := &envtest.Environment{}
	testenv.SlowStart(env)
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin = kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := []string{base}
	for i := 1; i < 8; i++ {
		names = append(names, routing.ShardName(base, i))
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "router"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: names, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "router"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "router"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "router"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err := env.AddUser(envtest.User{Name: "router"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	return admin, kubernetes.NewForConfigOrDie(rc)
}

func put(t *testing.T, c kubernetes.Interface, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{routing.SecretKey: data}}
	_, err := c.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = c.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func table(n int) *routing.Table {
	t := &routing.Table{}
	for i := range n {
		t.Apps = append(t.Apps, routing.App{ID: "ns/app-" + string(rune('a'+i%26)) + string(rune('a'+i/26)), History: 100 + i,
			Tokens: []routing.Token{{SHA256: routing.HashToken("t." + string(rune('a'+i))), Source: "app"}}})
	}
	t.Seal()
	return t
}

func TestSecretWatch(t *testing.T) {
	admin, routerClient := startAPIServer(t)
	// The router's identity can read its Secrets and nothing else.
	if _, err := routerClient.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("router user may list all secrets: %v", err)
	}
	rec := newRecorder()
	errs := newErrorLog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &tablesource.Secret{Client: routerClient, Namespace: ns, Name: base, Retry: 50 * time.Millisecond, Logger: slog.New(errs)}
	go func() { _ = src.Run(ctx, rec.apply) }()

	// One Secret.
	t1 := table(3)
	shards, err := routing.Split(t1, 1<<20)
	if err != nil || len(shards) != 1 {
		t.Fatalf("split: %d shards, %v", len(shards), err)
	}
	put(t, admin, base, shards[0])
	if got := rec.next(t); got.Version != t1.Version || len(got.Apps) != 3 {
		t.Fatalf("applied %s with %d apps, want %s", got.Version, len(got.Apps), t1.Version)
	}

	// Sharded, written in the manager's order: other shards first, shard 0 last.
	t2 := table(40)
	shards, err = routing.Split(t2, 2500)
	if err != nil || len(shards) < 2 || len(shards) > 8 {
		t.Fatalf("split: %d shards, %v", len(shards), err)
	}
	for i := len(shards) - 1; i >= 0; i-- {
		put(t, admin, routing.ShardName(base, i), shards[i])
	}
	if got := rec.next(t); got.Version != t2.Version || len(got.Apps) != 40 {
		t.Fatalf("applied %s with %d apps, want %s with 40", got.Version, len(got.Apps), t2.Version)
	}

	// A reader that sees shard 0 before the others (a writer out of order) retries
	// until they agree, and never applies a mixed table. Every app changes, so
	// every shard does.
	t3 := table(40)
	for i := range t3.Apps {
		t3.Apps[i].History += 1000
	}
	t3.Seal()
	shards3, err := routing.Split(t3, 2500, len(shards))
	if err != nil {
		t.Fatal(err)
	}
	for len(errs.ch) > 0 { // failures before this step do not count
		<-errs.ch
	}
	put(t, admin, base, shards3[0])
	for range 2 { // several failed reads
		if msg := errs.next(t); !strings.Contains(msg, "load routing table from secret") {
			t.Fatalf("logged %q, want a failed load", msg)
		}
	}
	select {
	case got := <-rec.ch:
		t.Fatalf("applied %s before its shards were written", got.Version)
	default:
	}
	for i := 1; i < len(shards3); i++ {
		put(t, admin, routing.ShardName(base, i), shards3[i])
	}
	if got := rec.next(t); got.Version != t3.Version || len(got.Apps) != 40 || got.Apps[0].History < 1000 {
		t.Fatalf("applied %s with %d apps, want %s with 40", got.Version, len(got.Apps), t3.Version)
	}

	// One app changes: its shard and shard 0 are rewritten, and the router reads
	// only that shard again (the others it holds, by digest).
	t4 := table(40)
	for i := range t4.Apps {
		t4.Apps[i].History += 1000
	}
	t4.Apps[7].History = 7
	t4.Seal()
	shards4, err := routing.Split(t4, 2500, len(shards3))
	if err != nil || len(shards4) != len(shards3) {
		t.Fatalf("split: %d shards (before %d), %v", len(shards4), len(shards3), err)
	}
	changed := 0
	for i := len(shards4) - 1; i >= 1; i-- {
		if string(shards4[i]) != string(shards3[i]) {
			put(t, admin, routing.ShardName(base, i), shards4[i])
			changed++
		}
	}
	if changed > 1 {
		t.Fatalf("one app's change rewrote %d shards besides shard 0", changed)
	}
	reads := src.Reads.Load()
	put(t, admin, base, shards4[0])
	got := rec.next(t)
	if got.Version != t4.Version || len(got.Apps) != 40 {
		t.Fatalf("applied %s with %d apps, want %s with 40", got.Version, len(got.Apps), t4.Version)
	}
	for _, a := range got.Apps {
		if a.ID == t4.Apps[7].ID && a.History != 7 {
			t.Fatalf("app %s has history %d, want the changed 7", a.ID, a.History)
		}
	}
	if n := src.Reads.Load() - reads; n != int64(changed) {
		t.Fatalf("the router read %d shards for a change to %d", n, changed)
	}
}
