package controllers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// policyTTL is how long a URL policy answer (a DNS lookup for host names) is reused;
// drains come back this often to look again. The router checks every dial anyway.
const policyTTL = 5 * time.Minute

type verdict struct {
	url string
	at  time.Time
	err error
}

// check runs the checks that decide whether the drain may be routed.
func (r *LogDrainReconciler) check(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (*routes.AcceptedDrain, error) {
	acc, err := r.checkDestination(ctx, d)
	if err != nil {
		return nil, err
	}
	if err := r.resolveCredentials(ctx, d, acc); err != nil {
		return nil, err
	}
	if err := r.checkApp(ctx, d); err != nil {
		return nil, err
	}
	return acc, nil
}

// checkDestination parses the URL, applies the URL policy and fills the display
// destination. Userinfo never reaches status, Events, logs or the routing table URL.
func (r *LogDrainReconciler) checkDestination(ctx context.Context, d *kubeplexv1alpha1.LogDrain) (*routes.AcceptedDrain, error) {
	u, perr := url.Parse(d.Spec.URL)
	if perr != nil || u.Host == "" {
		d.Status.Destination = ""
		return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: "url cannot be parsed as scheme://host[:port][/path]"}
	}
	d.Status.Destination = u.Scheme + "://" + u.Host
	switch u.Scheme {
	case "syslog", "syslog+tls", "http", "https", "otlp+http", "otlp+https", "otlp+grpc", "otlp+grpcs":
	default:
		return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason,
			msg: fmt.Sprintf("url scheme %q is not one of syslog, syslog+tls, http, https, otlp+http, otlp+https, otlp+grpc, otlp+grpcs", u.Scheme)}
	}
	if isOTLPGRPC(u.Scheme) && u.EscapedPath() != "" && u.EscapedPath() != "/" {
		return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: "otlp+grpc urls take no path"}
	}
	if err := r.checkPolicy(ctx, d); err != nil {
		var na *egress.NotAllowedError
		var re *egress.ResolveError
		switch {
		case errors.As(err, &na):
			return nil, &specError{reason: kubeplexv1alpha1.URLNotAllowedReason, msg: na.Error()}
		case errors.As(err, &re):
			return nil, re
		default:
			return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: err.Error()}
		}
	}
	acc := &routes.AcceptedDrain{App: d.Spec.AppRef.Name, Selector: d.Spec.AppSelector, Generation: d.Generation}
	if u.User != nil {
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, &specError{reason: kubeplexv1alpha1.InvalidURLReason, msg: "url userinfo is only used by http and https drains"}
		}
		acc.Username = u.User.Username()
		acc.Password, _ = u.User.Password()
	}
	clean := *u
	clean.User = nil
	acc.URL = clean.String()
	return acc, nil
}

// checkPolicy applies the URL policy, reusing an answer for the same URL younger than
// policyTTL: health reports bring active drains back every few seconds, and each
// would otherwise cost a DNS lookup. Lookup failures are never reused.
func (r *LogDrainReconciler) checkPolicy(ctx context.Context, d *kubeplexv1alpha1.LogDrain) error {
	now := r.now()
	r.mu.Lock()
	v := r.remember(d).verdict
	r.mu.Unlock()
	if v != nil && v.url == d.Spec.URL && now.Sub(v.at) < policyTTL {
		return v.err
	}
	_, err := r.Policy.Check(ctx, d.Spec.URL)
	var re *egress.ResolveError
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.remember(d)
	if errors.As(err, &re) {
		m.verdict = nil
	} else {
		m.verdict = &verdict{url: d.Spec.URL, at: now, err: err}
	}
	return err
}

// resolveCredentials reads the Secrets the drain refers to. A missing Secret or key
// is SecretNotFound; the Secret watch brings the drain back when it appears.
func (r *LogDrainReconciler) resolveCredentials(ctx context.Context, d *kubeplexv1alpha1.LogDrain, acc *routes.AcceptedDrain) error {
	if ref := d.Spec.CredentialsSecretRef; ref != nil {
		data, err := r.secretData(ctx, d.Namespace, ref.Name)
		if err != nil {
			return err
		}
		userKey, passKey := ref.UsernameKey, ref.PasswordKey
		if userKey == "" {
			userKey = "username"
		}
		if passKey == "" {
			passKey = "password"
		}
		pass, ok := data[passKey]
		if !ok {
			return &specError{reason: kubeplexv1alpha1.SecretNotFoundReason,
				msg: fmt.Sprintf("Secret %s has no key %q", ref.Name, passKey)}
		}
		acc.Username, acc.Password = string(data[userKey]), string(pass)
	}
	if err := r.resolveOTLP(ctx, d, acc); err != nil {
		return err
	}
	if t := d.Spec.TLS; t != nil && usesTLS(acc.URL) {
		acc.TLS = &routing.TLS{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
		if ref := t.CASecretRef; ref != nil {
			data, err := r.secretData(ctx, d.Namespace, ref.Name)
			if err != nil {
				return err
			}
			ca, ok := data[ref.Key]
			if !ok {
				return &specError{reason: kubeplexv1alpha1.SecretNotFoundReason,
					msg: fmt.Sprintf("Secret %s has no key %q", ref.Name, ref.Key)}
			}
			if !x509.NewCertPool().AppendCertsFromPEM(ca) {
				return &specError{reason: kubeplexv1alpha1.InvalidTLSReason,
					msg: fmt.Sprintf("Secret %s key %q holds no PEM certificate", ref.Name, ref.Key)}
			}
			acc.TLS.CAPEM = string(ca)
		}
	}
	return nil
}

// usesTLS reports whether a drain URL's scheme is one the tls options apply to.
func usesTLS(u string) bool {
	for _, p := range []string{"https://", "syslog+tls://", "otlp+https://", "otlp+grpcs://"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// secretData reads a Secret a drain refers to, if it opted in. The manager can read
// every Secret; the drain's author perhaps none, and the router sends what is read to
// a URL the author chose. So only Secrets marked for drains (by whoever made them)
// are used: others are refused without their content reaching the routing table.
func (r *LogDrainReconciler) secretData(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &specError{reason: kubeplexv1alpha1.SecretNotFoundReason, msg: fmt.Sprintf("Secret %s not found", name)}
		}
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	if !drainUsable(s) {
		return nil, &specError{reason: kubeplexv1alpha1.SecretNotAllowedReason,
			msg: fmt.Sprintf("Secret %s is not marked for drains: give it type %s or label %s=true",
				name, kubeplexv1alpha1.DrainCredentialsSecretType, kubeplexv1alpha1.DrainCredentialsLabel)}
	}
	return s.Data, nil
}

// drainUsable reports whether a Secret opted in to being used by LogDrains.
func drainUsable(s *corev1.Secret) bool {
	return string(s.Type) == kubeplexv1alpha1.DrainCredentialsSecretType || s.Labels[kubeplexv1alpha1.DrainCredentialsLabel] == "true"
}

func (r *LogDrainReconciler) checkApp(ctx context.Context, d *kubeplexv1alpha1.LogDrain) error {
	if d.Spec.AppSelector != nil {
		return r.checkApps(ctx, d)
	}
	app := &kubeplexv1alpha1.LogApp{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: d.Namespace, Name: d.Spec.AppRef.Name}, app); err != nil {
		if apierrors.IsNotFound(err) {
			return &specError{reason: kubeplexv1alpha1.AppNotFoundReason, msg: fmt.Sprintf("LogApp %s not found", d.Spec.AppRef.Name)}
		}
		return fmt.Errorf("get logapp: %w", err)
	}
	if !meta.IsStatusConditionTrue(app.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
		return &specError{reason: kubeplexv1alpha1.AppNotReadyReason, msg: fmt.Sprintf("LogApp %s is not Ready", d.Spec.AppRef.Name)}
	}
	return nil
}

// checkApps counts the Ready apps a namespace-wide drain covers into status.apps. No
// app is no error: the drain waits in the table's terms (it covers nothing) until
// one is made, and the LogApp watch brings it back then.
func (r *LogDrainReconciler) checkApps(ctx context.Context, d *kubeplexv1alpha1.LogDrain) error {
	apps, err := coveredApps(ctx, r.Client, d.Namespace, d.Spec.AppSelector)
	if err != nil {
		var se *selectorError
		if errors.As(err, &se) {
			return &specError{reason: kubeplexv1alpha1.InvalidSelectorReason, msg: "appSelector: " + se.Error()}
		}
		return err
	}
	d.Status.Apps = int32(len(apps))
	return nil
}

// selectorError is an appSelector that does not parse.
type selectorError struct{ error }

// coveredApps lists the names of the Ready LogApps of namespace ns that a
// namespace-wide drain with selector sel covers: those whose streams it carries, and
// that its kubeplex[api] and failing/recovered lines go to.
func coveredApps(ctx context.Context, c client.Reader, ns string, selector *metav1.LabelSelector) ([]string, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, &selectorError{err}
	}
	var apps kubeplexv1alpha1.LogAppList
	if err := c.List(ctx, &apps, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list logapps: %w", err)
	}
	var out []string
	for i := range apps.Items {
		a := &apps.Items[i]
		if a.DeletionTimestamp.IsZero() && meta.IsStatusConditionTrue(a.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
			out = append(out, a.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}
