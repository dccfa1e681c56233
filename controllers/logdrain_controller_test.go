package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

type discardRecorder struct{}

func (discardRecorder) Eventf(runtime.Object, runtime.Object, string, string, string, string, ...any) {
}

func drainSecret(t *testing.T, d *kubeplexv1alpha1.LogDrain) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: d.Namespace, Name: d.Name + kubeplexv1alpha1.DrainSecretSuffix}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLogDrainURLPolicy is issue 4's SSRF matrix through the reconciler: each refused
// URL gives Ready=False/URLNotAllowed and stays out of the routing table; the
// allowlisted ones are accepted.
func TestLogDrainURLPolicy(t *testing.T) {
	m := startManager(t, Config{})
	ns := newNamespace(t)
	app := newApp(ns, "web")
	create(t, app)
	condition(t, app, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	api, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{
		"loopback":         "syslog://127.0.0.1:514",
		"rfc1918-10":       "syslog://10.0.0.1:514",
		"rfc1918-172":      "syslog://172.16.0.1:514",
		"rfc1918-192":      "syslog+tls://192.168.1.1:6514",
		"metadata":         "http://169.254.169.254/latest/meta-data/",
		"ipv6-loopback":    "syslog://[::1]:514",
		"ula":              "https://[fc00::1]/logs",
		"apiserver":        "https://" + api.Host + "/api/v1/namespaces",
		"name-to-loopback": "syslog://localhost:514",
	}
	allowed := map[string]string{
		"allowlisted-ip":   "syslog://127.0.0.2:514",
		"allowlisted-name": "https://allowed.test/logs",
		"public":           "syslog://203.0.113.7:514",
	}
	for name, u := range refused {
		create(t, newDrain(ns, name, "web", u))
	}
	for name, u := range allowed {
		create(t, newDrain(ns, name, "web", u))
	}
	for name := range refused {
		d := newDrain(ns, name, "web", "")
		c := condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.URLNotAllowedReason)
		t.Logf("%s: %s", name, c.Message)
		if !routes.ValidDrainToken(d.Status.Token) {
			t.Errorf("%s: refused drain has no drain token", name)
		}
		waitEvents(t, d, kubeplexv1alpha1.URLNotAllowedReason)
	}
	for name := range allowed {
		d := newDrain(ns, name, "web", "")
		condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	}
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		got := drainIDs(a)
		want := []string{ns + "/allowlisted-ip", ns + "/allowlisted-name", ns + "/public"}
		if !slices.Equal(got, want) {
			return fmt.Errorf("drains %v, want %v", got, want)
		}
		return nil
	})

	// A drain that was accepted and is then pointed at a refused address leaves the
	// table; pointed back, it returns with the same drain token.
	d := newDrain(ns, "public", "web", "")
	get(t, d)
	token := d.Status.Token
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.URL = "syslog://169.254.169.254:514"
	if err := k8s.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.URLNotAllowedReason)
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if slices.Contains(drainIDs(a), ns+"/public") {
			return fmt.Errorf("refused drain still in the table")
		}
		return nil
	})
	patch = client.MergeFrom(d.DeepCopy())
	d.Spec.URL = "syslog://203.0.113.8:514"
	if err := k8s.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		for _, dr := range a.Drains {
			if dr.ID == ns+"/public" {
				if dr.URL != "syslog://203.0.113.8:514" || dr.Token != token {
					return fmt.Errorf("drain %s token same %v", dr.URL, dr.Token == token)
				}
				return nil
			}
		}
		return fmt.Errorf("drain back in the table: %v", drainIDs(a))
	})
	if d.Status.Token != token {
		t.Errorf("drain token changed from %s to %s", token, d.Status.Token)
	}
	assertNoLeak(t, m.logs, ns, map[string]string{"hmac key": string(drainSecret(t, d).Data[kubeplexv1alpha1.DrainHMACKeySecretKey])})
}

// TestLogDrainHeals: SecretNotFound and AppNotFound/AppNotReady heal when the Secret
// or the app appears, without touching the drain; credentials reach the table and
// nowhere else.
func TestLogDrainHeals(t *testing.T) {
	m := startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	const password, urlPassword = "correct-horse-battery", "url-embedded-pw"

	// Credentials Secret missing, then present without the key, then complete.
	create(t, newApp(ns, "web"))
	withCreds := newDrain(ns, "creds", "web", "https://allowed.test/ingest")
	withCreds.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: "drain-creds"}
	create(t, withCreds)
	c := condition(t, withCreds, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.SecretNotFoundReason)
	t.Logf("missing secret: %s", c.Message)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drain-creds"}, StringData: map[string]string{"username": "shop"},
		Type: kubeplexv1alpha1.DrainCredentialsSecretType}
	create(t, creds)
	testenv.Eventually(t, "missing key named", func() error {
		c = condition(t, withCreds, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.SecretNotFoundReason)
		if !strings.Contains(c.Message, `no key "password"`) {
			return fmt.Errorf("message %q does not name the missing key", c.Message)
		}
		return nil
	})
	get(t, creds)
	creds.StringData = map[string]string{"password": password}
	if err := k8s.Update(ctx, creds); err != nil {
		t.Fatal(err)
	}
	condition(t, withCreds, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 || a.Drains[0].Username != "shop" || a.Drains[0].Password != password {
			return fmt.Errorf("drain credentials not in the table")
		}
		return nil
	})

	// App missing, then present (not Ready until its token exists), then Ready.
	early := newDrain(ns, "early", "later", "http://user:"+urlPassword+"@allowed.test/x")
	create(t, early)
	condition(t, early, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.AppNotFoundReason)
	if early.Status.Destination != "http://allowed.test" {
		t.Errorf("destination %q, want http://allowed.test (no userinfo)", early.Status.Destination)
	}
	create(t, newApp(ns, "later"))
	condition(t, early, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	tableApp(t, routes.ID(ns, "later"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 || a.Drains[0].URL != "http://allowed.test/x" || a.Drains[0].Password != urlPassword {
			return fmt.Errorf("drain with URL credentials: %v", drainIDs(a))
		}
		return nil
	})

	// The drain Secret: token in status equals the Secret's, a 256-bit signing key.
	sec := drainSecret(t, withCreds)
	if string(sec.Data[kubeplexv1alpha1.DrainTokenSecretKey]) != withCreds.Status.Token || !routes.ValidHMACKey(string(sec.Data[kubeplexv1alpha1.DrainHMACKeySecretKey])) {
		t.Errorf("drain secret: token matches status %v, signing key valid %v",
			string(sec.Data[kubeplexv1alpha1.DrainTokenSecretKey]) == withCreds.Status.Token, routes.ValidHMACKey(string(sec.Data[kubeplexv1alpha1.DrainHMACKeySecretKey])))
	}
	if !metav1.IsControlledBy(sec, withCreds) {
		t.Error("drain secret not owned by the drain")
	}

	// No write on a second reconcile of the unchanged drain.
	get(t, withCreds)
	sec = drainSecret(t, withCreds)
	r := &LogDrainReconciler{Client: m.client, APIReader: k8s, Recorder: discardRecorder{}, Policy: testPolicy(t)}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(withCreds)}); err != nil {
		t.Fatal(err)
	}
	d2, s2 := withCreds.DeepCopy(), sec.DeepCopy()
	get(t, d2)
	get(t, s2)
	if d2.ResourceVersion != withCreds.ResourceVersion || s2.ResourceVersion != sec.ResourceVersion {
		t.Errorf("no-op reconcile wrote: drain rv %s→%s, secret rv %s→%s", withCreds.ResourceVersion, d2.ResourceVersion, sec.ResourceVersion, s2.ResourceVersion)
	}

	// The drain token survives a status wipe: the Secret is its home.
	token := withCreds.Status.Token
	patch := client.MergeFrom(withCreds.DeepCopy())
	withCreds.Status = kubeplexv1alpha1.LogDrainStatus{}
	if err := k8s.Status().Patch(ctx, withCreds, patch); err != nil {
		t.Fatal(err)
	}
	patch = client.MergeFrom(withCreds.DeepCopy())
	withCreds.Labels = map[string]string{"touched": "yes"} // brings the drain back
	if err := k8s.Patch(ctx, withCreds, patch); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "token restored", func() error {
		get(t, withCreds)
		if withCreds.Status.Token != token {
			return fmt.Errorf("token %q, want %q", withCreds.Status.Token, token)
		}
		return nil
	})

	assertNoLeak(t, m.logs, ns, map[string]string{
		"password": password, "url password": urlPassword,
		"hmac key": string(sec.Data[kubeplexv1alpha1.DrainHMACKeySecretKey]),
	})
}

// TestLogDrainHostNotResolved: a name that does not resolve (the test resolver makes
// no DNS queries) is a transient state with its own reason, retried rather than
// failed for good.
func TestLogDrainHostNotResolved(t *testing.T) {
	startManager(t, Config{})
	ns := newNamespace(t)
	create(t, newApp(ns, "web"))
	d := newDrain(ns, "gone", "web", "syslog://no-such-host.invalid:514")
	create(t, d)
	c := condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.HostNotResolvedReason)
	t.Logf("unresolvable: %s", c.Message)
}

// selfSignedPEM returns a PEM certificate for a drain's CA bundle.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestLogDrainTLS: a CA bundle that is no PEM gives InvalidTLS; a real one reaches the
// routing table with the server name.
func TestLogDrainTLS(t *testing.T) {
	startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	create(t, newApp(ns, "web"))
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca", Labels: map[string]string{kubeplexv1alpha1.DrainCredentialsLabel: "true"}},
		StringData: map[string]string{"ca.crt": "not a certificate"}}
	create(t, ca)
	d := newDrain(ns, "tls", "web", "syslog+tls://allowed.test:6514")
	d.Spec.TLS = &kubeplexv1alpha1.DrainTLS{ServerName: "logs.example.com", CASecretRef: &kubeplexv1alpha1.SecretKeyReference{Name: "ca", Key: "ca.crt"}}
	create(t, d)
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.InvalidTLSReason)
	pemCA := selfSignedPEM(t)
	get(t, ca)
	ca.Data = map[string][]byte{"ca.crt": pemCA}
	if err := k8s.Update(ctx, ca); err != nil {
		t.Fatal(err)
	}
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 || a.Drains[0].TLS == nil || a.Drains[0].TLS.CAPEM != string(pemCA) || a.Drains[0].TLS.ServerName != "logs.example.com" {
			return fmt.Errorf("drain TLS not in the table")
		}
		return nil
	})
}
