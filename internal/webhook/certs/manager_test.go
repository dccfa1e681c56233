package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

const (
	ns      = "kubeplex-system"
	cfgName = "kubeplex-injector"
)

var (
	// cluster starts on first use: the pure PKI tests do not need it.
	cluster = testenv.LazyCluster{Setup: func(c *testenv.Cluster) error {
		k8s = c.Client
		return k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}}
	k8s client.Client
)

// startEnv makes sure the package's API server runs and k8s is its client.
func startEnv(t *testing.T) {
	t.Helper()
	cluster.Get(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
	}
	os.Exit(code)
}

func newManager(t *testing.T, secret string) (*Manager, string) {
	t.Helper()
	startEnv(t)
	dir := filepath.Join(t.TempDir(), "certs")
	m, err := New(k8s, k8s, Options{
		Namespace: ns, SecretName: secret, WebhookConfigName: cfgName, CertDir: dir,
		DNSNames: ServiceDNSNames("kubeplex-webhook", ns), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		CAValidity: time.Hour, ServingValidity: 15 * time.Minute, CheckInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, dir
}

func getSecret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// filesMatch checks that dir holds exactly the serving pair of the Secret, loadable
// the way the webhook server's certwatcher loads it.
func filesMatch(t *testing.T, dir string, s *corev1.Secret) {
	t.Helper()
	crt, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(crt, s.Data[CertKey]) || !bytes.Equal(key, s.Data[KeyKey]) {
		t.Fatal("cert dir does not hold the Secret's serving pair")
	}
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		t.Fatalf("cert dir pair does not load: %v", err)
	}
}

func createConfig(t *testing.T, webhooks int) {
	t.Helper()
	startEnv(t)
	url := "https://127.0.0.1:1/x"
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: cfgName}}
	for i := range webhooks {
		cfg.Webhooks = append(cfg.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name:                    fmt.Sprintf("w%d.kubeplex.io", i),
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			// Match nothing: this test server must not call it.
			ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "true"}},
		})
	}
	if err := k8s.Create(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), cfg) })
}

func caBundles(t *testing.T) [][]byte {
	t.Helper()
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := k8s.Get(t.Context(), client.ObjectKey{Name: cfgName}, &cfg); err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, 0, len(cfg.Webhooks))
	for _, w := range cfg.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

func TestEnsure(t *testing.T) {
	ctx := t.Context()
	m, dir := newManager(t, "ensure-cert")

	// No webhook configuration yet: the certificate is still issued and written.
	if err := m.Ensure(ctx); err != nil {
		t.Fatalf("Ensure without a webhook configuration: %v", err)
	}
	s := getSecret(t, "ensure-cert")
	if s.Type != corev1.SecretTypeTLS || s.Labels["app.kubernetes.io/managed-by"] != "kubeplex" {
		t.Errorf("Secret type %s labels %v", s.Type, s.Labels)
	}
	filesMatch(t, dir, s)
	firstCA := s.Data[CAKey]

	// The configuration appears: every webhook in it gets the CA.
	createConfig(t, 2)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for i, b := range caBundles(t) {
		if !bytes.Equal(b, firstCA) {
			t.Errorf("webhook %d caBundle is not the Secret's CA", i)
		}
	}
	// A second pass with nothing due writes nothing.
	rv := getSecret(t, "ensure-cert").ResourceVersion
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if got := getSecret(t, "ensure-cert").ResourceVersion; got != rv {
		t.Errorf("unchanged pass rewrote the Secret (resourceVersion %s → %s)", rv, got)
	}

	// Garbage in the Secret (say, a bad manual edit) is replaced by a new CA.
	s = getSecret(t, "ensure-cert")
	s.Data[CAKey] = []byte("garbage")
	if err := k8s.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s = getSecret(t, "ensure-cert")
	if bytes.Equal(s.Data[CAKey], firstCA) || len(s.Data[PrevCAKey]) != 0 {
		t.Error("unparsable CA not replaced cleanly")
	}
	for i, b := range caBundles(t) {
		if !bytes.Equal(b, s.Data[CAKey]) {
			t.Errorf("webhook %d caBundle not updated to the new CA", i)
		}
	}
	filesMatch(t, dir, s)
}

// Several replicas start at once against an empty Secret: one issues the
// certificate, the others adopt it, and all serve the same pair.
func TestReplicasAgree(t *testing.T) {
	createConfig(t, 1)
	for round := range 3 {
		name := fmt.Sprintf("race-cert-%d", round)
		var wg sync.WaitGroup
		dirs := make([]string, 4)
		errs := make([]error, 4)
		for i := range dirs {
			m, dir := newManager(t, name)
			dirs[i] = dir
			wg.Go(func() { errs[i] = m.Ensure(t.Context()) })
		}
		wg.Wait()
		s := getSecret(t, name)
		for i, dir := range dirs {
			if errs[i] != nil {
				t.Fatalf("round %d replica %d: %v", round, i, errs[i])
			}
			filesMatch(t, dir, s)
		}
		if b := caBundles(t)[0]; !bytes.Equal(b, s.Data[CAKey]) {
			t.Fatalf("round %d: caBundle is not the agreed CA", round)
		}
	}
}

// The loop repairs what others undo: a deleted Secret, a caBundle reset by a
// re-applied manifest.
func TestStartRepairs(t *testing.T) {
	createConfig(t, 1)
	m, dir := newManager(t, "loop-cert")
	if err := m.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	}()

	old := getSecret(t, "loop-cert")
	if err := k8s.Delete(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "Secret re-created with a new CA and the files and caBundle following it", func() error {
		var s corev1.Secret
		if err := k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "loop-cert"}, &s); err != nil {
			return err
		}
		if bytes.Equal(s.Data[CAKey], old.Data[CAKey]) {
			return fmt.Errorf("same CA")
		}
		if crt, _ := os.ReadFile(filepath.Join(dir, "tls.crt")); !bytes.Equal(crt, s.Data[CertKey]) {
			return fmt.Errorf("cert dir not updated")
		}
		if !bytes.Equal(caBundles(t)[0], s.Data[CAKey]) {
			return fmt.Errorf("caBundle not updated")
		}
		return nil
	})

	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := k8s.Get(t.Context(), client.ObjectKey{Name: cfgName}, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[0].ClientConfig.CABundle = nil
	if err := k8s.Update(t.Context(), &cfg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "caBundle restored", func() error {
		if len(caBundles(t)[0]) == 0 {
			return fmt.Errorf("caBundle still empty")
		}
		return nil
	})
}
