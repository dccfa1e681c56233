//go:build node

package node

import (
	"cmp"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managerMetrics: the chart's manager serves /metrics over HTTPS to a ServiceAccount
// bound to <release>-metrics-reader, as Prometheus scrapes it, and to nobody else:
// the manager's own ClusterRole lets it ask the API server (TokenReview,
// SubjectAccessReview).
func (s *suite) managerMetrics(t *testing.T) {
	const ns = "node-metrics"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "create", "serviceaccount", "-n", ns, "scraper")
	kubectl(t, "create", "serviceaccount", "-n", ns, "stranger")
	kubectl(t, "create", "clusterrolebinding", "node-scraper", "--clusterrole="+release+"-metrics-reader", "--serviceaccount="+ns+":scraper")
	t.Cleanup(func() {
		_, _ = runErr(kubectlB, "delete", "clusterrolebinding", "node-scraper") // best effort: not a kubeplex object
		_, _ = runErr(kubectlB, "delete", "namespace", ns, "--wait=false")      // likewise
	})
	token := func(sa string) string { return strings.TrimSpace(kubectl(t, "create", "token", "-n", ns, sa)) }
	scraper, stranger := token("scraper"), token("stranger")

	var pods corev1.PodList
	if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(systemNS), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Fatal("no manager pods")
	}
	// Self-signed certificate: scrapers skip verification (the chart's ServiceMonitor does).
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(url, bearer string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // read fully above
		return resp.StatusCode, string(b), err
	}
	for _, p := range pods.Items {
		url := fmt.Sprintf("https://%s:8443/metrics", p.Status.PodIP)
		eventually(t, time.Minute, "scraper reads "+p.Name+"'s metrics", func() error {
			code, body, err := get(url, scraper)
			if err != nil {
				return err
			}
			if code != http.StatusOK || !strings.Contains(body, "controller_runtime_") {
				return fmt.Errorf("status %d: %.200s", code, body)
			}
			return nil
		})
		for who, c := range map[string]struct {
			token string
			want  int
		}{"no token": {"", http.StatusUnauthorized}, "a ServiceAccount without the binding": {stranger, http.StatusForbidden}} {
			if code, body, err := get(url, c.token); err != nil || code != c.want {
				t.Errorf("%s: %s got %d (%v), want %d: %.200s", p.Name, who, code, err, c.want, body)
			}
		}
	}
}

// logPeakMemory logs the peak resident memory (VmHWM) of the manager and router
// processes of this node, for sizing the chart's resources. The processes run on the
// host (the node is this machine), so /proc shows them.
func logPeakMemory(t *testing.T) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Logf("peak memory: %v", err)
		return
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmd), "\x00")
		if argv0 != "/manager" && argv0 != "/router" {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "VmHWM:") || strings.HasPrefix(l, "VmRSS:") {
				t.Logf("%s pid %s %s", argv0, e.Name(), strings.Join(strings.Fields(l), " "))
			}
		}
	}
}

// serviceMonitor: with a ServiceMonitor CRD on the cluster (a minimal one of the
// suite's own, testdata/servicemonitor-crd.yaml; no Prometheus operator runs here),
// `helm upgrade --set metrics.serviceMonitor.enabled=true` creates the chart's two
// ServiceMonitors, the API server accepts them, each selects exactly the Service it
// is for and names a port that Service has, and scraping every endpoint of that port
// as Prometheus would (its scheme, path, TLS settings and a ServiceAccount token bound
// to <release>-metrics-reader) answers with the component's metrics.
func (s *suite) serviceMonitor(t *testing.T) {
	kubectl(t, "apply", "-f", filepath.Join(repo, "test", "node", "testdata", "servicemonitor-crd.yaml"))
	kubectl(t, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=60s")
	helm(t, "upgrade", release, filepath.Join(repo, "charts", "kubeplex"), "-n", systemNS, "--reuse-values",
		"--set", "metrics.serviceMonitor.enabled=true", "--wait", "--timeout", "5m")

	const ns = "node-monitor"
	kubectl(t, "create", "namespace", ns)
	kubectl(t, "create", "serviceaccount", "-n", ns, "prometheus")
	kubectl(t, "create", "clusterrolebinding", "node-prometheus", "--clusterrole="+release+"-metrics-reader", "--serviceaccount="+ns+":prometheus")
	t.Cleanup(func() {
		_, _ = runErr(kubectlB, "delete", "clusterrolebinding", "node-prometheus") // best effort: not a kubeplex object
		_, _ = runErr(kubectlB, "delete", "namespace", ns, "--wait=false")         // likewise
	})
	token := strings.TrimSpace(kubectl(t, "create", "token", "-n", ns, "prometheus"))

	var sms struct {
		Items []struct {
			Metadata struct{ Name string }
			Spec     struct {
				Selector          struct{ MatchLabels map[string]string }
				NamespaceSelector struct{ MatchNames []string }
				Endpoints         []struct {
					Port, Path, Scheme, BearerTokenFile string
					TLSConfig                           struct{ InsecureSkipVerify bool }
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(kubectl(t, "get", "servicemonitors", "-n", systemNS, "-o", "json")), &sms); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ service, metric string }{
		release + "-manager": {release + "-manager-metrics", "controller_runtime_"},
		release + "-router":  {release + "-router", "kubeplex_router_"},
	}
	if len(sms.Items) != len(want) {
		t.Fatalf("%d ServiceMonitors, want %d", len(sms.Items), len(want))
	}
	for _, sm := range sms.Items {
		w, ok := want[sm.Metadata.Name]
		if !ok {
			t.Errorf("unexpected ServiceMonitor %s", sm.Metadata.Name)
			continue
		}
		if len(sm.Spec.NamespaceSelector.MatchNames) != 1 || sm.Spec.NamespaceSelector.MatchNames[0] != systemNS {
			t.Errorf("%s selects namespaces %v, want [%s]", sm.Metadata.Name, sm.Spec.NamespaceSelector.MatchNames, systemNS)
			continue
		}
		var svcs corev1.ServiceList
		if err := cl.List(ctxFor(t, 30*time.Second), &svcs, client.InNamespace(systemNS), client.MatchingLabels(sm.Spec.Selector.MatchLabels)); err != nil {
			t.Fatal(err)
		}
		if len(svcs.Items) != 1 || svcs.Items[0].Name != w.service {
			names := make([]string, 0, len(svcs.Items))
			for _, svc := range svcs.Items {
				names = append(names, svc.Name)
			}
			t.Errorf("%s selects Services %v, want only %s", sm.Metadata.Name, names, w.service)
			continue
		}
		svc := svcs.Items[0]
		for _, ep := range sm.Spec.Endpoints {
			if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
				t.Errorf("%s: endpoint port %q is not a port of Service %s", sm.Metadata.Name, ep.Port, svc.Name)
				continue
			}
			scheme := cmp.Or(ep.Scheme, "http")
			bearer := ""
			if ep.BearerTokenFile != "" {
				bearer = token // what Prometheus reads from its own ServiceAccount token file
			}
			hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: ep.TLSConfig.InsecureSkipVerify}}} //nolint:gosec // as the ServiceMonitor says
			targets := scrapeTargets(t, svc.Name, ep.Port)
			if len(targets) != 2 {
				t.Errorf("%s: %d ready endpoints of %s port %s, want 2 (the replicas)", sm.Metadata.Name, len(targets), svc.Name, ep.Port)
			}
			for _, target := range targets {
				url := scheme + "://" + target + cmp.Or(ep.Path, "/metrics")
				eventually(t, time.Minute, "scrape "+url, func() error {
					req, err := http.NewRequest(http.MethodGet, url, nil)
					if err != nil {
						return err
					}
					if bearer != "" {
						req.Header.Set("Authorization", "Bearer "+bearer)
					}
					resp, err := hc.Do(req)
					if err != nil {
						return err
					}
					b, err := io.ReadAll(resp.Body)
					_ = resp.Body.Close() // read fully above
					if err != nil {
						return err
					}
					if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), w.metric) {
						return fmt.Errorf("status %d, no %s: %.200s", resp.StatusCode, w.metric, b)
					}
					return nil
				})
			}
		}
	}
}

// scrapeTargets are the host:port of every ready endpoint of Service svc's port
// named port, from its EndpointSlices, as Prometheus' endpoints discovery finds them.
func scrapeTargets(t *testing.T, svc, port string) []string {
	t.Helper()
	var eps discoveryv1.EndpointSliceList
	if err := cl.List(ctxFor(t, 30*time.Second), &eps, client.InNamespace(systemNS),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sl := range eps.Items {
		for _, p := range sl.Ports {
			if p.Name == nil || *p.Name != port || p.Port == nil {
				continue
			}
			for _, e := range sl.Endpoints {
				if e.Conditions.Ready != nil && !*e.Conditions.Ready {
					continue
				}
				for _, a := range e.Addresses {
					out = append(out, net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
				}
			}
		}
	}
	return out
}
