package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestReadyzWaitsForWebhook: with the webhook on, /readyz includes a check that the
// webhook server answers TLS, so a replica takes admission requests only once it can.
func TestReadyzWaitsForWebhook(t *testing.T) {
	c := startCluster(t)
	if err := c.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubeplex-system"}}); err != nil {
		t.Fatal(err)
	}
	probes, webhookAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	webhookPort := webhookAddr[strings.LastIndexByte(webhookAddr, ':')+1:]
	// TMPDIR keeps the self-managed certificate files (default cert dir under
	// os.TempDir()) inside the test.
	startManagerEnv(t, c, []string{"TMPDIR=" + t.TempDir()},
		"--health-probe-bind-address", probes, "--webhook-port", webhookPort,
		"--collector-image", "kubeplex/collector:test", "--webhook-cert-hosts", "127.0.0.1")

	testenv.Eventually(t, "ready with the webhook check", func() error {
		code, body, err := httpGet("http://" + probes + "/readyz?verbose=1")
		if err != nil {
			return fmt.Errorf("/readyz: %w", err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %q", code, body)
		}
		if !strings.Contains(body, "[+]webhook ok") {
			return fmt.Errorf("/readyz lists no webhook check: %q", body)
		}
		return nil
	})
	// The check is served on its own path too, as controller-runtime does for each.
	if code, body, err := httpGet("http://" + probes + "/readyz/webhook"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz/webhook: %d %q %v", code, body, err)
	}
}
