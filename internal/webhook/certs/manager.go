// Package certs keeps the webhook's serving certificate without cert-manager: a
// self-signed CA and a serving certificate live in one Secret in the manager's
// namespace, every manager replica copies them into the webhook server's CertDir
// (where controller-runtime's certwatcher reloads them) and patches the CA into the
// MutatingWebhookConfiguration's caBundle. Certificates are renewed once a third of
// their life is left; a replaced CA stays in the caBundle until it expires.
package certs

// The self-managed certificate lives in a Secret in the manager namespace and its CA
// is written into the MutatingWebhookConfiguration's caBundle.
// +kubebuilder:rbac:groups="",namespace=kubeplex-system,resources=secrets,verbs=get;create;update
// Only the configuration named by --webhook-configuration (the chart renames it with
// the release): a manager must not rewrite other admission webhooks.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations,verbs=get;update,resourceNames=kubeplex-injector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kubeplex/kubeplex/internal/owner"
)

// Defaults for Options.
const (
	DefaultSecretName      = "kubeplex-webhook-cert"
	DefaultCAValidity      = 3 * 365 * 24 * time.Hour
	DefaultServingValidity = 90 * 24 * time.Hour
	DefaultCheckInterval   = time.Minute
)

// Options configure a Manager.
type Options struct {
	// Namespace and SecretName locate the Secret holding CA and serving certificate.
	Namespace  string
	SecretName string
	// WebhookConfigName is the MutatingWebhookConfiguration whose webhooks get the
	// caBundle; empty means none (e.g. the API server is told the CA some other way).
	WebhookConfigName string
	// CertDir, CertName and KeyName are where the webhook server reads its certificate.
	CertDir, CertName, KeyName string
	// CAValidity, ServingValidity, DNSNames and IPAddresses shape the certificates.
	CAValidity, ServingValidity time.Duration
	DNSNames                    []string
	IPAddresses                 []net.IP
	// CheckInterval is how often Start re-reads the Secret, renews and re-patches.
	CheckInterval time.Duration
	// Now is the clock; tests move it forward to force renewals.
	Now func() time.Time
	// Owner, when set, is added to the Secret's owners (package owner).
	Owner *metav1.OwnerReference
}

// ServiceDNSNames are the names the API server may use for a Service-backed webhook.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace,
		service,
	}
}

// Manager keeps the webhook serving certificate valid. It is a manager.Runnable that
// runs on every replica (each serves the webhook); concurrent renewals by several
// replicas are settled by the Secret's resourceVersion.
type Manager struct {
	opts   Options
	reader client.Reader
	client client.Client

	configMissing atomic.Bool // logged once until the configuration appears
}

var _ manager.LeaderElectionRunnable = (*Manager)(nil)

// New returns a Manager. reader should be uncached (mgr.GetAPIReader()): Ensure runs
// before the manager's caches start, and a cache would watch every Secret.
func New(reader client.Reader, c client.Client, opts Options) (*Manager, error) {
	if opts.Namespace == "" || opts.CertDir == "" {
		return nil, errors.New("certs: Namespace and CertDir are required")
	}
	if len(opts.DNSNames) == 0 && len(opts.IPAddresses) == 0 {
		return nil, errors.New("certs: no DNS names or IP addresses to certify")
	}
	if opts.SecretName == "" {
		opts.SecretName = DefaultSecretName
	}
	if opts.CertName == "" {
		opts.CertName = "tls.crt"
	}
	if opts.KeyName == "" {
		opts.KeyName = "tls.key"
	}
	if opts.CAValidity <= 0 {
		opts.CAValidity = DefaultCAValidity
	}
	if opts.ServingValidity <= 0 {
		opts.ServingValidity = DefaultServingValidity
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{opts: opts, reader: reader, client: c}, nil
}

func (m *Manager) policy() Policy {
	return Policy{
		CAValidity: m.opts.CAValidity, ServingValidity: m.opts.ServingValidity,
		DNSNames: m.opts.DNSNames, IPAddresses: m.opts.IPAddresses,
	}
}

// NeedLeaderElection is false: every replica serves the webhook and needs the files.
func (m *Manager) NeedLeaderElection() bool { return false }

// Start calls Ensure every CheckInterval until ctx ends. A failed pass is logged and
// retried on the next tick: the certificates it keeps are renewed long before expiry.
func (m *Manager) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("webhook-certs")
	t := time.NewTicker(m.opts.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Ensure(ctx); err != nil {
				log.Error(err, "Keeping webhook certificates failed; retrying")
			}
		}
	}
}

// Ensure makes one pass: renew what is due in the Secret, patch the trust bundle into
// the webhook configuration, then write the serving pair to CertDir. The caBundle is
// patched before the files change so that the API server already trusts a new CA by
// the time this replica presents a certificate signed by it.
func (m *Manager) Ensure(ctx context.Context) error {
	b, err := m.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := m.patchCABundle(ctx, b.TrustBundle(m.opts.Now())); err != nil {
		return err
	}
	return m.writeFiles(b)
}

// CABundle returns the trust bundle currently stored in the Secret.
func (m *Manager) CABundle(ctx context.Context) ([]byte, error) {
	var s corev1.Secret
	if err := m.reader.Get(ctx, client.ObjectKey{Namespace: m.opts.Namespace, Name: m.opts.SecretName}, &s); err != nil {
		return nil, fmt.Errorf("get certificate secret: %w", err)
	}
	return BundleFromData(s.Data).TrustBundle(m.opts.Now()), nil
}

func (m *Manager) ensureSecret(ctx context.Context) (Bundle, error) {
	log := logf.FromContext(ctx).WithName("webhook-certs")
	key := client.ObjectKey{Namespace: m.opts.Namespace, Name: m.opts.SecretName}
	var lastErr error
	// A few rounds settle a race between replicas renewing at the same moment: the
	// loser re-reads the winner's Secret and finds nothing left to do.
	for range 5 {
		now := m.opts.Now()
		var s corev1.Secret
		err := m.reader.Get(ctx, key, &s)
		if apierrors.IsNotFound(err) {
			b, err := Renew(Bundle{}, now, m.policy())
			if err != nil {
				return Bundle{}, err
			}
			s = corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: key.Namespace, Name: key.Name,
					Labels: map[string]string{"app.kubernetes.io/managed-by": "kubeplex"},
				},
				Type: corev1.SecretTypeTLS,
				Data: b.Data(),
			}
			owner.Set(&s, m.opts.Owner)
			err = m.client.Create(ctx, &s)
			if apierrors.IsAlreadyExists(err) {
				lastErr = err
				continue
			}
			if err != nil {
				return Bundle{}, fmt.Errorf("create certificate secret: %w", err)
			}
			log.Info("Created webhook certificate", "secret", key.String())
			return b, nil
		}
		if err != nil {
			return Bundle{}, fmt.Errorf("get certificate secret: %w", err)
		}
		cur := BundleFromData(s.Data)
		newCA, newServing, why := Plan(cur, now, m.policy())
		if !newCA && !newServing {
			if owner.Has(&s, m.opts.Owner) {
				return cur, nil
			}
			// Made by a manager without an owner (an upgrade): adopt it as it is.
			owner.Set(&s, m.opts.Owner)
			err = m.client.Update(ctx, &s)
			if apierrors.IsConflict(err) {
				lastErr = err
				continue
			}
			if err != nil {
				return Bundle{}, fmt.Errorf("set owner of certificate secret: %w", err)
			}
			return cur, nil
		}
		b, err := Renew(cur, now, m.policy())
		if err != nil {
			return Bundle{}, err
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		delete(s.Data, PrevCAKey)
		for k, v := range b.Data() {
			s.Data[k] = v
		}
		owner.Set(&s, m.opts.Owner)
		err = m.client.Update(ctx, &s)
		if apierrors.IsConflict(err) {
			lastErr = err
			continue
		}
		if err != nil {
			return Bundle{}, fmt.Errorf("update certificate secret: %w", err)
		}
		log.Info("Renewed webhook certificate", "secret", key.String(), "reason", why, "newCA", newCA)
		return b, nil
	}
	return Bundle{}, fmt.Errorf("write certificate secret: %w", lastErr)
}

func (m *Manager) patchCABundle(ctx context.Context, caBundle []byte) error {
	if m.opts.WebhookConfigName == "" {
		return nil
	}
	log := logf.FromContext(ctx).WithName("webhook-certs")
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cfg admissionregistrationv1.MutatingWebhookConfiguration
		if err := m.reader.Get(ctx, client.ObjectKey{Name: m.opts.WebhookConfigName}, &cfg); err != nil {
			return err
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, caBundle) {
				cfg.Webhooks[i].ClientConfig.CABundle = caBundle
				changed = true
			}
		}
		if !changed {
			return nil
		}
		if err := m.client.Update(ctx, &cfg); err != nil {
			return err
		}
		log.Info("Patched caBundle", "mutatingWebhookConfiguration", cfg.Name, "webhooks", len(cfg.Webhooks))
		return nil
	})
	// A missing configuration is not fatal: the pod webhook is fail-open, the server
	// still needs its certificate, and the next pass patches it once it is installed.
	if apierrors.IsNotFound(err) {
		if !m.configMissing.Swap(true) {
			log.Info("Webhook configuration not found; caBundle not patched yet", "mutatingWebhookConfiguration", m.opts.WebhookConfigName)
		}
		return nil
	}
	m.configMissing.Store(false)
	if err != nil {
		return fmt.Errorf("patch caBundle into %s: %w", m.opts.WebhookConfigName, err)
	}
	return nil
}

// writeFiles replaces the serving pair in CertDir when it differs, each file by an
// atomic rename so the certwatcher never reads a half-written file.
func (m *Manager) writeFiles(b Bundle) error {
	if err := os.MkdirAll(m.opts.CertDir, 0o700); err != nil {
		return fmt.Errorf("create cert dir: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{m.opts.KeyName, b.Key}, {m.opts.CertName, b.Cert}} {
		path := filepath.Join(m.opts.CertDir, f.name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.data) {
			continue
		}
		tmp, err := os.CreateTemp(m.opts.CertDir, "."+f.name+".*")
		if err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", f.name, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}
