package controllers

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
)

var addonTokenRE = regexp.MustCompile(`^a\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// reconcileAddonSecrets gives each add-on in spec.addons its own token (a.<uuid>) in
// the Secret <app>-kubeplex-addon-<name>, and lists them with the ingest URL in
// status.addons (the token itself never goes into status). The routing table gives
// the token the add-on's name as its only source (routes.Render). An add-on removed
// from spec.addons is revoked twice over: the table no longer has its token, and its
// Secret is emptied (the manager may update Secrets, not delete them; the owner
// reference deletes it with the LogApp), so adding the add-on again issues a new token.
func (r *LogAppReconciler) reconcileAddonSecrets(ctx context.Context, app *kubeplexv1alpha1.LogApp) error {
	app.Status.Addons = nil
	for _, a := range app.Spec.Addons {
		name := app.Name + kubeplexv1alpha1.AddonSecretInfix + a.Name
		if err := r.ensureAddonSecret(ctx, app, name); err != nil {
			return err
		}
		app.Status.Addons = append(app.Status.Addons,
			kubeplexv1alpha1.AddonInputStatus{Name: a.Name, URL: r.IngestURL, TokenSecretName: name})
	}
	var secrets corev1.SecretList
	if err := r.Client.List(ctx, &secrets, client.InNamespace(app.Namespace),
		client.MatchingLabels(routes.Labels(kubeplexv1alpha1.SecretRoleAddon))); err != nil {
		return fmt.Errorf("list add-on secrets: %w", err)
	}
	for i := range secrets.Items {
		s := &secrets.Items[i]
		if !metav1.IsControlledBy(s, app) || len(s.Data) == 0 ||
			slices.ContainsFunc(app.Status.Addons, func(a kubeplexv1alpha1.AddonInputStatus) bool { return a.TokenSecretName == s.Name }) {
			continue
		}
		upd := s.DeepCopy()
		upd.Data = nil
		if err := r.Client.Update(ctx, upd); err != nil {
			return fmt.Errorf("revoke add-on token %s: %w", s.Name, err)
		}
	}
	return nil
}

func (r *LogAppReconciler) ensureAddonSecret(ctx context.Context, app *kubeplexv1alpha1.LogApp, name string) error {
	sec := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: name}, sec)
	if err == nil {
		if !metav1.IsControlledBy(sec, app) {
			return &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
				msg: fmt.Sprintf("Secret %s exists and is not owned by this LogApp", name)}
		}
		if addonTokenRE.Match(sec.Data[kubeplexv1alpha1.TokenSecretKey]) {
			return nil
		}
		tok, err := newToken("a")
		if err != nil {
			return err
		}
		upd := sec.DeepCopy()
		upd.Data = map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)}
		if err := r.Client.Update(ctx, upd); err != nil {
			return fmt.Errorf("update add-on secret: %w", err)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get add-on secret: %w", err)
	}
	tok, err := newToken("a")
	if err != nil {
		return err
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: app.Namespace,
			Labels: routes.Labels(kubeplexv1alpha1.SecretRoleAddon)},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(tok)},
	}
	if err := controllerutil.SetControllerReference(app, sec, r.Client.Scheme()); err != nil {
		return fmt.Errorf("set owner of add-on secret: %w", err)
	}
	if err := r.Client.Create(ctx, sec); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return &specError{reason: kubeplexv1alpha1.TokenSecretErrorReason,
				msg: fmt.Sprintf("Secret %s exists and is not managed by kubeplex; delete or rename it", name)}
		}
		return fmt.Errorf("create add-on secret: %w", err)
	}
	return nil
}
