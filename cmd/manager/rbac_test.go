package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// applyRBAC creates the RBAC objects of config/rbac/<files>, binding them to user
// instead of the ServiceAccount named in the file (envtest has no token controller).
func applyRBAC(t *testing.T, c *cluster, user string, files ...string) {
	t.Helper()
	ctx := context.Background()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			var head metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var obj client.Object
			switch head.Kind {
			case "":
				continue
			case "ClusterRole":
				obj = &rbacv1.ClusterRole{}
			case "Role":
				obj = &rbacv1.Role{}
			case "ClusterRoleBinding":
				obj = &rbacv1.ClusterRoleBinding{}
			case "RoleBinding":
				obj = &rbacv1.RoleBinding{}
			case "ServiceAccount":
				continue
			default:
				t.Fatalf("%s: unexpected kind %s", f, head.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			userSubject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
			switch o := obj.(type) {
			case *rbacv1.ClusterRoleBinding:
				o.Subjects = userSubject
			case *rbacv1.RoleBinding:
				o.Subjects = userSubject
			}
			if err := c.Client.Create(ctx, obj); err != nil {
				t.Fatalf("%s: create %s %s: %v", f, head.Kind, obj.GetName(), err)
			}
		}
	}
}

func httpGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // read-only; ReadAll reported any error that matters
	return resp.StatusCode, string(b), err
}

// TestLeastPrivilege runs the binary as a user holding exactly the generated manager
// RBAC (config/rbac), with leader election, metrics and probes on: it takes the
// Lease, reconciles, stores the table and is never refused by the API server. A user
// with the router's Role reads the routing Secrets by name and nothing else.
func TestLeastPrivilege(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	for _, ns := range []string{"kubeplex-system", "demo"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	applyRBAC(t, c, "kubeplex-manager", "role.yaml", "role_binding.yaml", "leader_election_role.yaml", "leader_election_role_binding.yaml")
	applyRBAC(t, c, "kubeplex-router", "router_role.yaml", "router_role_binding.yaml")
	kc, mgr := c.User(t, "kubeplex-manager")
	_, router := c.User(t, "kubeplex-router")

	metrics, probes := testenv.FreeAddr(t), testenv.FreeAddr(t)
	admin := c.kubeconfig
	c.kubeconfig = kc
	manager := startManager(t, c, "--leader-elect=true", "--metrics-bind-address", metrics, "--health-probe-bind-address", probes,
		"--allow-cidrs", "127.0.0.0/8")
	c.kubeconfig = admin

	testenv.Eventually(t, "Lease held", func() error {
		var l coordinationv1.Lease
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "kubeplex-system", Name: "kubeplex-manager.kubeplex.io"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	for _, p := range []string{"/healthz", "/readyz"} {
		testenv.Eventually(t, "probe "+p, func() error {
			code, body, err := httpGet("http://" + probes + p)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%d %q", code, body)
			}
			return nil
		})
	}

	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "creds"}, StringData: map[string]string{"username": "u", "password": "pw-least-privilege"},
		Type: kubeplexv1alpha1.DrainCredentialsSecretType}
	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web"}}
	d := drain("https", "https://127.0.0.1:8443/logs")
	d.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: "creds"}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web-1", Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web"}}}}
	for _, o := range []client.Object{creds, app, d, pod} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "drain Ready", func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		cond, err := readyCondition(d.Status.Conditions)
		if err != nil {
			return err
		}
		if cond.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready=%s %s: %s", cond.Status, cond.Reason, cond.Message)
		}
		return nil
	})
	testenv.Eventually(t, "app counts its pod", func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(app), app); err != nil {
			return err
		}
		if app.Status.Pods != 1 || app.Status.Drains != 1 {
			return fmt.Errorf("pods %d drains %d", app.Status.Pods, app.Status.Drains)
		}
		return nil
	})
	testenv.Eventually(t, "metrics", func() error {
		code, body, err := httpGet("http://" + metrics + "/metrics")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		for _, want := range []string{"kubeplex_routes_drains 1", "kubeplex_routes_shards 1", `controller_runtime_reconcile_total{controller="logdrain"`} {
			if !strings.Contains(body, want) {
				return fmt.Errorf("no %q in /metrics", want)
			}
		}
		return nil
	})

	// The router's Role: the routing Secret by name, nothing else.
	var s corev1.Secret
	if err := router.Get(ctx, client.ObjectKey{Namespace: "kubeplex-system", Name: "kubeplex-routes"}, &s); err != nil {
		t.Errorf("router cannot read kubeplex-routes: %v", err)
	}
	if err := router.Get(ctx, client.ObjectKey{Namespace: "demo", Name: "creds"}, &s); !apierrors.IsForbidden(err) {
		t.Errorf("router reading another Secret: %v, want Forbidden", err)
	}
	if err := router.List(ctx, &corev1.SecretList{}, client.InNamespace("kubeplex-system")); !apierrors.IsForbidden(err) {
		t.Errorf("router listing Secrets: %v, want Forbidden", err)
	}

	// Webhook configurations: the manager's own by name, no other (issue 11, hole 4).
	for _, name := range []string{"kubeplex-injector", "someone-elses-webhook"} {
		if err := c.Client.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	var own, other admissionregistrationv1.MutatingWebhookConfiguration
	if err := mgr.Get(ctx, client.ObjectKey{Name: "kubeplex-injector"}, &own); err != nil {
		t.Errorf("manager cannot read its webhook configuration: %v", err)
	} else if err := mgr.Update(ctx, &own); err != nil {
		t.Errorf("manager cannot update its webhook configuration: %v", err)
	}
	if err := mgr.Get(ctx, client.ObjectKey{Name: "someone-elses-webhook"}, &other); !apierrors.IsForbidden(err) {
		t.Errorf("manager reading another webhook configuration: %v, want Forbidden", err)
	}
	other.Name = "someone-elses-webhook"
	if err := c.Client.Get(ctx, client.ObjectKey{Name: other.Name}, &other); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Update(ctx, &other); !apierrors.IsForbidden(err) {
		t.Errorf("manager updating another webhook configuration: %v, want Forbidden", err)
	}

	// Every API request the manager made so far, by answer code: none refused.
	if _, body, err := httpGet("http://" + metrics + "/metrics"); err != nil {
		t.Error(err)
	} else if !strings.Contains(body, `rest_client_requests_total{code="200"`) {
		t.Error("/metrics has no rest_client_requests_total by code: the refusal check would be empty")
	} else if strings.Contains(body, `code="403"`) {
		t.Errorf("the API server refused the manager a request its RBAC should allow:\n%s", grepLines(body, `code="403"`))
	}
	logs := stopForLogs(t, manager)
	if strings.Contains(logs, "forbidden") {
		t.Errorf("the manager was refused something its RBAC should allow:\n%s", logs)
	}
	if strings.Contains(logs, "pw-least-privilege") {
		t.Error("manager output contains the drain password")
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
