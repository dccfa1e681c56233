package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestRuntimeObjectsOwnedByDeployment: with --owner-deployment, every object the
// manager creates in its namespace (routing table, webhook certificate, session keys,
// platform credential, leader Lease) names the manager's Deployment as its owner, so
// the garbage collector deletes them when `helm uninstall` deletes the Deployment
// (envtest runs no garbage collector; the node suite's case 9 sees the deletion).
// Objects an earlier manager made without an owner are adopted. The manager runs
// with exactly the generated RBAC, which must allow the Deployment lookup.
func TestRuntimeObjectsOwnedByDeployment(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	const ns = "kubeplex-system"
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	applyRBAC(t, c, "kubeplex-manager", "role.yaml", "role_binding.yaml", "leader_election_role.yaml", "leader_election_role_binding.yaml")
	kc, _ := c.User(t, "kubeplex-manager")
	labels := map[string]string{"app": "kubeplex-manager"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kubeplex-manager"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "manager", Image: "kubeplex/manager:test"}}},
			},
		},
	}
	if err := c.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	// An app, so that the routing table has content and the platform credential is used.
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Create(ctx, &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web"}}); err != nil {
		t.Fatal(err)
	}

	secrets := []string{"kubeplex-routes", "kubeplex-webhook-cert", "kubeplex-session-keys", kubeplexv1alpha1.PlatformSecretName}
	const lease = "kubeplex-manager.kubeplex.io"
	// owners returns "name: owner UIDs" for each runtime object, or an error while
	// one is missing.
	owners := func() (map[string][]types.UID, error) {
		out := map[string][]types.UID{}
		for _, name := range secrets {
			var s corev1.Secret
			if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
				return nil, err
			}
			out["secret/"+name] = uids(s.OwnerReferences)
		}
		var l coordinationv1.Lease
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: lease}, &l); err != nil {
			return nil, err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return nil, fmt.Errorf("lease has no holder yet")
		}
		out["lease/"+lease] = uids(l.OwnerReferences)
		return out, nil
	}
	start := func(extra ...string) *testenv.Process {
		webhookAddr := testenv.FreeAddr(t)
		admin := c.kubeconfig
		c.kubeconfig = kc
		defer func() { c.kubeconfig = admin }()
		return startManagerEnv(t, c, []string{"TMPDIR=" + t.TempDir()}, append([]string{"--leader-elect=true",
			"--webhook-port", webhookAddr[strings.LastIndexByte(webhookAddr, ':')+1:],
			"--collector-image", "kubeplex/collector:test", "--webhook-cert-hosts", "127.0.0.1"}, extra...)...)
	}

	// An earlier manager, without the flag: the objects exist and are owned by nothing.
	old := start()
	testenv.Eventually(t, "runtime objects made by a manager without an owner", func() error {
		got, err := owners()
		if err != nil {
			return err
		}
		for name, u := range got {
			if len(u) != 0 {
				t.Fatalf("%s is owned by %v without --owner-deployment", name, u)
			}
		}
		return nil
	})
	stopForLogs(t, old)

	// The new manager names its Deployment: it adopts what exists; then a new shard
	// and a recreated Secret are created owned.
	m := start("--owner-deployment", "kubeplex-manager")
	want := func() error {
		got, err := owners()
		if err != nil {
			return err
		}
		for name, u := range got {
			if len(u) != 1 || u[0] != dep.UID {
				return fmt.Errorf("%s: owners %v, want only deployment %s", name, u, dep.UID)
			}
		}
		return nil
	}
	testenv.Eventually(t, "every runtime object owned by the manager's Deployment", want)
	if err := c.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kubeplex-session-keys"}}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "a recreated Secret is owned from its creation", want)

	// A name that is no Deployment stops the manager with a clear error at once.
	bad := start("--owner-deployment", "no-such-deployment")
	select {
	case <-bad.Exited():
	case <-time.After(time.Minute):
		t.Fatal("manager with a missing owner deployment still runs after a minute")
	}
	if err := bad.Stop(0); err == nil {
		t.Error("manager with a missing owner deployment exited 0")
	}
	if out := bad.Out.String(); !strings.Contains(out, `look up owner deployment kubeplex-system/no-such-deployment`) {
		t.Errorf("manager output does not name the missing owner:\n%s", out)
	}
	stopForLogs(t, m)
}

func uids(refs []metav1.OwnerReference) []types.UID {
	out := make([]types.UID, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.UID)
	}
	return out
}
