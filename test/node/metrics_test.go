//go:build node

package node

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
