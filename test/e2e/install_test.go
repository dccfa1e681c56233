package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// decodeManifests splits a multi-document YAML stream into objects.
func decodeManifests(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var objs []*unstructured.Unstructured
	for {
		var o unstructured.Unstructured
		if err := dec.Decode(&o.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decode manifests: %v", err)
		}
		if len(o.Object) > 0 {
			objs = append(objs, &o)
		}
	}
}

func renderChart(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM is not set: run `make test`, which builds helm into bin/")
	}
	args := make([]string, 0, 6+2*len(set))
	// The chart's kubeVersion (>= 1.29) is checked against --kube-version, which
	// helm template otherwise assumes to be 1.20.
	args = append(args, "template", "kubeplex", filepath.Join(repoRoot(t), "charts", "kubeplex"),
		"--namespace", systemNS, "--include-crds", "--kube-version", "1.37.2")
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", set, err, out)
	}
	return decodeManifests(t, out)
}

var flagName = regexp.MustCompile(`^--?([a-zA-Z0-9-]+)`)

// checkFlags asserts that every flag a manifest passes to a kubeplex binary is one the
// binary defines, so a renamed flag cannot leave the chart or kustomize broken.
func checkFlags(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	help := map[string]string{}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			cm := c.(map[string]any)
			binary := cm["name"].(string)
			if _, ok := bins[binary]; !ok {
				continue
			}
			if _, ok := help[binary]; !ok {
				out, _ := exec.Command(bins[binary], "--help").CombinedOutput()
				help[binary] = string(out)
			}
			args, _, _ := unstructured.NestedStringSlice(cm, "args")
			for _, a := range args {
				m := flagName.FindStringSubmatch(a)
				if m == nil {
					continue
				}
				if !regexp.MustCompile(`(^|\s)--?` + regexp.QuoteMeta(m[1]) + `\b`).MatchString(help[binary]) {
					t.Errorf("%s %s passes flag --%s, which `%s --help` does not list", o.GetKind(), o.GetName(), m[1], binary)
				}
			}
		}
	}
}

// applyAll creates every object in a real API server (CRDs first), which checks each
// against the server's schemas and validation.
func applyAll(t *testing.T, c *cluster, objs []*unstructured.Unstructured, skipKinds ...string) {
	t.Helper()
	ctx := contextFor(t, testenv.WaitTimeout)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		rank := func(o *unstructured.Unstructured) int {
			switch o.GetKind() {
			case "CustomResourceDefinition":
				return 0
			case "Namespace":
				return 1
			}
			return 2
		}
		return rank(a) - rank(b)
	})
	for _, o := range objs {
		if slices.Contains(skipKinds, o.GetKind()) {
			continue
		}
		err := c.Client.Create(ctx, o)
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Errorf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func kinds(objs []*unstructured.Unstructured) map[string][]string {
	k := map[string][]string{}
	for _, o := range objs {
		k[o.GetKind()] = append(k[o.GetKind()], o.GetName())
	}
	return k
}

func TestHelmChart(t *testing.T) {
	c := startCluster(t)
	tests := []struct {
		name      string
		set       []string
		wantKinds []string
		noKinds   []string
	}{
		{name: "defaults", wantKinds: []string{"CustomResourceDefinition", "Deployment", "Service", "ClusterRole", "Role",
			"MutatingWebhookConfiguration", "ServiceAccount", "NetworkPolicy"}, noKinds: []string{"Certificate", "ServiceMonitor"}},
		{name: "service monitors", set: []string{"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom"},
			wantKinds: []string{"ServiceMonitor"}},
		{name: "plain metrics", set: []string{"metrics.secure=false", "metrics.serviceMonitor.enabled=true"}, wantKinds: []string{"ServiceMonitor"}},
		{name: "network policy off", set: []string{"router.networkPolicy.enabled=false"}, noKinds: []string{"NetworkPolicy"}},
		{name: "webhook off", set: []string{"webhook.enabled=false"}, noKinds: []string{"MutatingWebhookConfiguration"}},
		{name: "cert-manager", set: []string{"webhook.certManagement=cert-manager"}, wantKinds: []string{"Certificate", "Issuer"}},
		{name: "syslog listeners and allowlist", set: []string{"router.syslogTCPPort=6514", "router.syslogUDPPort=514",
			"manager.allowCIDRs={10.1.0.0/16}", "router.allowCIDRs={10.1.0.0/16}"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderChart(t, tt.set...)
			got := kinds(objs)
			for _, k := range tt.wantKinds {
				if len(got[k]) == 0 {
					t.Errorf("no %s rendered", k)
				}
			}
			for _, k := range tt.noKinds {
				if len(got[k]) != 0 {
					t.Errorf("%s rendered: %v", k, got[k])
				}
			}
			checkFlags(t, objs)
			checkMetrics(t, objs, tt.set)
			if i == 0 {
				checkRouterRole(t, objs, "kubeplex-routes")
				checkUserRoles(t, objs)
				checkAdminPolicy(t, objs)
				checkWebhookRights(t, objs, "kubeplex-injector")
				// `helm install --create-namespace` makes the release namespace; cert-manager
				// kinds are not installed in the test API server.
				ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
					"metadata": map[string]any{"name": systemNS}}}
				applyAll(t, c, append(objs, ns), "Certificate", "Issuer")
			}
		})
	}
}

// checkUserRoles asserts the chart's user ClusterRoles carry the rules and
// aggregation labels of config/rbac's kubeplex-edit and kubeplex-view (tested against
// the API server in controllers.TestUserRolesAggregate).
func checkUserRoles(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, name := range []string{"kubeplex-edit", "kubeplex-view"} {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", strings.ReplaceAll(name, "-", "_")+"_role.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		want := decodeManifests(t, b)[0]
		var got *unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "ClusterRole" && o.GetName() == name {
				got = o
			}
		}
		if got == nil {
			t.Errorf("chart renders no ClusterRole %s", name)
			continue
		}
		wantRules, _, _ := unstructured.NestedSlice(want.Object, "rules")
		gotRules, _, _ := unstructured.NestedSlice(got.Object, "rules")
		if !reflect.DeepEqual(wantRules, gotRules) {
			t.Errorf("chart %s rules %v, config/rbac has %v", name, gotRules, wantRules)
		}
		for k, v := range want.GetLabels() {
			if got.GetLabels()[k] != v {
				t.Errorf("chart %s lacks label %s=%s", name, k, v)
			}
		}
	}
}

// checkRouterRole asserts the router may read Secrets only by name, and only the
// routing-table ones, and besides them only list/watch EndpointSlices (to find the
// other replicas for log sessions).
func checkRouterRole(t *testing.T, objs []*unstructured.Unstructured, routes string) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Role" || !strings.HasSuffix(o.GetName(), "-router") {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		if len(rules) != 2 {
			t.Fatalf("router Role has %d rules, want 2", len(rules))
		}
		eps := rules[1].(map[string]any)
		res, _, _ := unstructured.NestedStringSlice(eps, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(eps, "verbs")
		if strings.Join(res, ",") != "endpointslices" || strings.Join(verbs, ",") != "list,watch" {
			t.Fatalf("router Role's second rule = %v, want list/watch on endpointslices", eps)
		}
		names, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any), "resourceNames")
		if len(names) == 0 || names[0] != routes {
			t.Fatalf("router Role resourceNames = %v, want %s first", names, routes)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, routes) {
				t.Fatalf("router may read Secret %q", n)
			}
		}
		return
	}
	t.Fatal("no router Role rendered")
}

// checkAdminPolicy asserts the router's admin port (/status, /metrics) is reachable
// only from the rule naming the manager, while the ingest port stays open to all.
func checkAdminPolicy(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "NetworkPolicy" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "spec", "ingress")
		var openAdmin, managerAdmin, openIngest bool
		for _, r := range rules {
			rm := r.(map[string]any)
			from, hasFrom := rm["from"]
			ports, _ := rm["ports"].([]any)
			for _, p := range ports {
				port := p.(map[string]any)["port"]
				switch {
				case port == "admin" && !hasFrom:
					openAdmin = true
				case port == "admin" && strings.Contains(fmt.Sprint(from), "component:manager"):
					managerAdmin = true
				case port == "http" && !hasFrom:
					openIngest = true
				}
			}
		}
		if openAdmin || !managerAdmin || !openIngest {
			t.Errorf("router NetworkPolicy: admin open to all %v, admin from the manager %v, ingest open %v", openAdmin, managerAdmin, openIngest)
		}
		return
	}
	t.Fatal("no router NetworkPolicy rendered")
}

// checkMetrics asserts the manager's metrics are reachable as values say: a Service
// on the container's metrics port, HTTPS with the reader ClusterRole unless
// metrics.secure=false, and ServiceMonitors that select the metrics Services by
// their port names (the scheme matching) and carry the extra labels.
func checkMetrics(t *testing.T, objs []*unstructured.Unstructured, set []string) {
	t.Helper()
	secure := !slices.Contains(set, "metrics.secure=false")
	byKey := byKindName(objs)
	mgr := byKey["Deployment/kubeplex-manager"]
	if mgr == nil {
		t.Fatal("no manager Deployment")
	}
	c := container(t, mgr)
	if got := flags(c)["metrics-secure"]; got != fmt.Sprint(secure) {
		t.Errorf("manager --metrics-secure=%q, want %v", got, secure)
	}
	svc := byKey["Service/kubeplex-manager-metrics"]
	if svc == nil {
		t.Fatal("no Service kubeplex-manager-metrics")
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	wantName := map[bool]string{true: "https", false: "http"}[secure]
	if len(ports) != 1 || ports[0].(map[string]any)["name"] != wantName || ports[0].(map[string]any)["targetPort"] != "metrics" {
		t.Errorf("manager metrics Service ports %v, want one %q to targetPort metrics", ports, wantName)
	}
	if cr := byKey["ClusterRole/kubeplex-metrics-reader"]; cr == nil {
		t.Error("no ClusterRole kubeplex-metrics-reader")
	} else if rules := fmt.Sprint(cr.Object["rules"]); !strings.Contains(rules, "/metrics") || !strings.Contains(rules, "get") {
		t.Errorf("kubeplex-metrics-reader rules %s", rules)
	}
	for name, labels := range map[string]map[string]any{"kubeplex-manager": svc.Object["metadata"].(map[string]any)["labels"].(map[string]any),
		"kubeplex-router": byKey["Service/kubeplex-router"].Object["metadata"].(map[string]any)["labels"].(map[string]any)} {
		sm := byKey["ServiceMonitor/"+name]
		if sm == nil {
			continue // off by default; the cases' kinds say when it must be there
		}
		sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("ServiceMonitor %s selects %s=%s, which the Service does not carry (%v)", name, k, v, labels)
			}
		}
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		ep := eps[0].(map[string]any)
		want := map[string]string{"kubeplex-manager": wantName, "kubeplex-router": "admin"}[name]
		if ep["port"] != want || (name == "kubeplex-manager" && secure && ep["scheme"] != "https") {
			t.Errorf("ServiceMonitor %s endpoint %v, want port %s", name, ep, want)
		}
		if slices.Contains(set, "metrics.serviceMonitor.labels.release=prom") && sm.GetLabels()["release"] != "prom" {
			t.Errorf("ServiceMonitor %s labels %v lack release=prom", name, sm.GetLabels())
		}
	}
}

// checkWebhookRights asserts the manager may touch only its own webhook
// configuration, by name.
func checkWebhookRights(t *testing.T, objs []*unstructured.Unstructured, name string) {
	t.Helper()
	found := false
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			rm := r.(map[string]any)
			res, _, _ := unstructured.NestedStringSlice(rm, "resources")
			if !slices.Contains(res, "mutatingwebhookconfigurations") {
				continue
			}
			found = true
			names, _, _ := unstructured.NestedStringSlice(rm, "resourceNames")
			if len(names) != 1 || names[0] != name {
				t.Errorf("%s may touch mutatingwebhookconfigurations %v, want only %s", o.GetName(), names, name)
			}
		}
	}
	if !found {
		t.Error("no ClusterRole rule for mutatingwebhookconfigurations")
	}
}

func TestKustomizeDefault(t *testing.T) {
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", filepath.Join(repoRoot(t), "config", "default")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	objs := decodeManifests(t, out)
	got := kinds(objs)
	for _, k := range []string{"CustomResourceDefinition", "Namespace", "Deployment", "ClusterRole", "Role", "MutatingWebhookConfiguration"} {
		if len(got[k]) == 0 {
			t.Errorf("config/default renders no %s", k)
		}
	}
	checkFlags(t, objs)
	checkRouterRole(t, objs, "kubeplex-routes")
	applyAll(t, startCluster(t), objs)
}
