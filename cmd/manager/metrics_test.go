package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestSecureMetrics: with --metrics-secure (the chart's and config/default's
// setting) the manager, holding only its generated RBAC, serves /metrics over HTTPS
// to a ServiceAccount bound to kubeplex-metrics-reader (config/rbac), as a scraper
// such as Prometheus calls it, and refuses a caller without a token (401) and a
// ServiceAccount without the binding (403).
func TestSecureMetrics(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	for _, ns := range []string{"kubeplex-system", "monitoring"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	applyRBAC(t, c, "kubeplex-manager", "role.yaml", "role_binding.yaml", "metrics_reader_role.yaml")
	for _, sa := range []string{"prometheus", "nobody"} {
		if err := c.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: sa}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-kubeplex-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kubeplex-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "monitoring", Name: "prometheus"}},
	}); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts("monitoring").CreateToken(ctx, sa,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}

	kc, _ := c.User(t, "kubeplex-manager")
	admin := c.kubeconfig
	c.kubeconfig = kc
	metrics := testenv.FreeAddr(t)
	manager := startManager(t, c, "--metrics-bind-address", metrics, "--metrics-secure")
	c.kubeconfig = admin

	// The certificate is self-signed (made at start): scrapers skip verification.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(bearer string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+metrics+"/metrics", nil)
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
	prom := token("prometheus")
	testenv.Eventually(t, "prometheus scrapes /metrics", func() error {
		code, body, err := get(prom)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d: %.200s", code, body)
		}
		if !strings.Contains(body, "kubeplex_routes_shards") {
			return fmt.Errorf("no kubeplex_routes_shards in /metrics")
		}
		return nil
	})
	for _, tt := range []struct {
		who, token string
		want       int
	}{{"no token", "", http.StatusUnauthorized}, {"a ServiceAccount without the binding", token("nobody"), http.StatusForbidden},
		// The API server's TokenReview answers a bad signature with an error, which
		// controller-runtime's filter turns into 500 "Authentication failed".
		{"a forged token", prom[:len(prom)-4] + "AAAA", http.StatusInternalServerError}} {
		if code, body, err := get(tt.token); err != nil || code != tt.want || strings.Contains(body, "kubeplex_") {
			t.Errorf("%s: status %d (%v), want %d: %.200s", tt.who, code, err, tt.want, body)
		}
	}
	// Plain HTTP gets no metrics.
	if code, _, err := httpGet("http://" + metrics + "/metrics"); err == nil && code == http.StatusOK {
		t.Error("/metrics answered over plain HTTP with --metrics-secure")
	}
	if logs := stopForLogs(t, manager); strings.Contains(logs, "forbidden") {
		t.Errorf("the manager was refused something its RBAC should allow:\n%s", logs)
	}
}
