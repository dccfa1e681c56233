package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestKustomizeMatchesHelm compares the objects that make the stack run in the two
// install paths, `kubectl apply -k config/default` and the chart with default values
// (release "kubeplex"): a fix made in one and forgotten in the other shows here. The
// node suite (test/node) then runs both for real.
func TestKustomizeMatchesHelm(t *testing.T) {
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(repoRoot(t), "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	kz := byKindName(decodeManifests(t, out))
	hm := byKindName(renderChart(t))

	for _, key := range []string{"CustomResourceDefinition/logapps.kubeplex.io", "CustomResourceDefinition/logdrains.kubeplex.io"} {
		a, b := kz[key], hm[key]
		if a == nil || b == nil {
			t.Errorf("%s: kustomize %v, helm %v", key, a != nil, b != nil)
			continue
		}
		if !reflect.DeepEqual(a.Object["spec"], b.Object["spec"]) {
			t.Errorf("%s differs between config/crd and charts/kubeplex/crds (run make manifests)", key)
		}
	}

	for _, name := range []string{"kubeplex-manager", "kubeplex-router"} {
		a, b := kz["Deployment/"+name], hm["Deployment/"+name]
		if a == nil || b == nil {
			t.Fatalf("Deployment %s: kustomize %v, helm %v", name, a != nil, b != nil)
		}
		for _, f := range [][]string{{"spec", "replicas"}, {"spec", "template", "spec", "securityContext"},
			{"spec", "template", "spec", "serviceAccountName"}} {
			va, _, _ := unstructured.NestedFieldNoCopy(a.Object, f...)
			vb, _, _ := unstructured.NestedFieldNoCopy(b.Object, f...)
			if !reflect.DeepEqual(va, vb) {
				t.Errorf("Deployment %s %s: kustomize %v, helm %v", name, strings.Join(f, "."), va, vb)
			}
		}
		ca, cb := container(t, a), container(t, b)
		for _, f := range []string{"image", "securityContext", "resources"} {
			if !reflect.DeepEqual(ca[f], cb[f]) {
				t.Errorf("Deployment %s container %s: kustomize %v, helm %v", name, f, ca[f], cb[f])
			}
		}
		// Every flag kustomize passes, helm passes with the same value, except the
		// ones that only name the chart's own choices.
		fa, fb := flags(ca), flags(cb)
		for k, v := range fa {
			if w, ok := fb[k]; !ok {
				t.Errorf("Deployment %s: kustomize passes --%s, helm does not", name, k)
			} else if w != v && !slices.Contains([]string{"metrics-bind-address"}, k) {
				t.Errorf("Deployment %s --%s: kustomize %q, helm %q", name, k, v, w)
			}
		}
		for _, must := range map[string][]string{"kubeplex-manager": {"collector-image", "namespace", "routes-secret", "owner-deployment"},
			"kubeplex-router": {"routes-secret"}}[name] {
			if _, ok := fa[must]; !ok {
				t.Errorf("Deployment %s: kustomize does not pass --%s", name, must)
			}
		}
		// The manager names its own Deployment as the owner of its runtime objects: a
		// wrong name stops it at start.
		if name == "kubeplex-manager" && (fa["owner-deployment"] != name || fb["owner-deployment"] != name) {
			t.Errorf("Deployment %s --owner-deployment: kustomize %q, helm %q, want its own name", name, fa["owner-deployment"], fb["owner-deployment"])
		}
		if mountPaths(ca) != mountPaths(cb) {
			t.Errorf("Deployment %s mounts: kustomize %q, helm %q", name, mountPaths(ca), mountPaths(cb))
		}
	}

	wa, wb := kz["MutatingWebhookConfiguration/kubeplex-injector"], hm["MutatingWebhookConfiguration/kubeplex-injector"]
	if wa == nil || wb == nil {
		t.Fatalf("MutatingWebhookConfiguration: kustomize %v, helm %v", wa != nil, wb != nil)
	}
	ha, _, _ := unstructured.NestedSlice(wa.Object, "webhooks")
	hb, _, _ := unstructured.NestedSlice(wb.Object, "webhooks")
	for _, f := range []string{"name", "failurePolicy", "sideEffects", "namespaceSelector", "objectSelector", "reinvocationPolicy"} {
		va, vb := ha[0].(map[string]any)[f], hb[0].(map[string]any)[f]
		if !reflect.DeepEqual(va, vb) {
			t.Errorf("webhook %s: kustomize %v, helm %v", f, va, vb)
		}
	}
	svcA, _, _ := unstructured.NestedMap(ha[0].(map[string]any), "clientConfig", "service")
	svcB, _, _ := unstructured.NestedMap(hb[0].(map[string]any), "clientConfig", "service")
	if svcA["name"] == nil || svcA["name"] != svcB["name"] || svcA["namespace"] != svcB["namespace"] || svcA["path"] != svcB["path"] {
		t.Errorf("webhook service: kustomize %v, helm %v", svcA, svcB)
	}

	// The manager's ClusterRole is generated once (config/rbac/role.yaml) and copied
	// into the chart: the rules must be the same.
	ra, rb := kz["ClusterRole/kubeplex-manager"], hm["ClusterRole/kubeplex-manager"]
	if ra == nil || rb == nil {
		t.Fatalf("ClusterRole kubeplex-manager: kustomize %v, helm %v", ra != nil, rb != nil)
	}
	if !reflect.DeepEqual(ra.Object["rules"], rb.Object["rules"]) {
		t.Errorf("ClusterRole kubeplex-manager rules differ (run make manifests)")
	}
	for _, key := range []string{"Service/kubeplex-router", "Service/kubeplex-webhook"} {
		a, b := kz[key], hm[key]
		if a == nil || b == nil {
			t.Errorf("%s: kustomize %v, helm %v", key, a != nil, b != nil)
			continue
		}
		pa, _, _ := unstructured.NestedSlice(a.Object, "spec", "ports")
		pb, _, _ := unstructured.NestedSlice(b.Object, "spec", "ports")
		if !reflect.DeepEqual(pa, pb) {
			t.Errorf("%s ports: kustomize %v, helm %v", key, pa, pb)
		}
	}
}

func byKindName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

func container(t *testing.T, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("Deployment %s has %d containers, want 1", d.GetName(), len(cs))
	}
	return cs[0].(map[string]any)
}

func flags(c map[string]any) map[string]string {
	m := map[string]string{}
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	for _, a := range args {
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		m[k] = v
	}
	return m
}

func mountPaths(c map[string]any) string {
	ms, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	p := make([]string, 0, len(ms))
	for _, m := range ms {
		p = append(p, m.(map[string]any)["mountPath"].(string))
	}
	slices.Sort(p)
	return strings.Join(p, ",")
}
