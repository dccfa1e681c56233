package controllers

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	_, err := r.ensureTokenSecret(ctx, app, name, "a", addonTokenRE, kubeplexv1alpha1.SecretRoleAddon, "add-on")
	return err
}
