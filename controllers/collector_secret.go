package controllers

import (
	"context"
	"fmt"
	"regexp"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
)

var collectorTokenRE = regexp.MustCompile(`^c\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// reconcileCollectorSecret makes sure the LogApp has its collector Secret: a second
// credential (c.<uuid>), which only the injected sidecars mount and which alone may
// write the app's process events as source kubeplex (docs/collector.md, "Trust").
// The app's own token (in the token Secret, which users hand to log-shuttle and the
// like) writes source app only. It is not rotated: it never leaves the cluster, and
// deleting the Secret issues a new one (collectors re-read it after a 401).
func (r *LogAppReconciler) reconcileCollectorSecret(ctx context.Context, app *kubeplexv1alpha1.LogApp) error {
	name := app.Name + kubeplexv1alpha1.CollectorSecretSuffix
	created, err := r.ensureTokenSecret(ctx, app, name, "c", collectorTokenRE, kubeplexv1alpha1.SecretRoleCollector, "collector")
	if created {
		logf.FromContext(ctx).Info("created collector secret", "secret", name)
	}
	return err
}

// ensureTokenSecret keeps Secret name, owned by app and labelled with role, holding a
// token of the given prefix that matches re: it creates the Secret, or writes a new
// token into one of ours whose token is missing or malformed. It reports whether it
// created the Secret. what names the Secret in errors.
func (r *LogAppReconciler) ensureTokenSecret(ctx context.Context, app *kubeplexv1alpha1.LogApp, name, prefix string,
	re *regexp.Regexp, role, what string) (bool, error) {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: name}, sec)
	if err == nil {
		if !metav1.IsControlledBy(sec, app) {
			return false, &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
				msg: fmt.Sprintf("Secret %s exists and is not owned by this LogApp", name)}
		}
		if re.Match(sec.Data[kubeplexv1alpha1.TokenSecretKey]) {
			return false, nil
		}
		tok, err := newToken(prefix)
		if err != nil {
			return false, err
		}
		upd := sec.DeepCopy()
		upd.Data = map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)}
		if err := r.Client.Update(ctx, upd); err != nil {
			return false, fmt.Errorf("update %s secret: %w", what, err)
		}
		return false, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("get %s secret: %w", what, err)
	}
	tok, err := newToken(prefix)
	if err != nil {
		return false, err
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: app.Namespace, Labels: routes.Labels(role)},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)},
	}
	if err := controllerutil.SetControllerReference(app, sec, r.Client.Scheme()); err != nil {
		return false, fmt.Errorf("set owner of %s secret: %w", what, err)
	}
	if err := r.Client.Create(ctx, sec); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return false, &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
				msg: fmt.Sprintf("Secret %s exists and is not managed by kubeplex; delete or rename it", name)}
		}
		return false, fmt.Errorf("create %s secret: %w", what, err)
	}
	return true, nil
}
