package controllers

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// TestUserRolesAggregate: with config/rbac's kubeplex-edit and kubeplex-view applied,
// a user bound to the built-in `edit` ClusterRole in a namespace creates LogApps and
// LogDrains there, and one bound to `view` reads them but cannot create or change
// them, nor write status.
//
// envtest runs no kube-controller-manager, whose clusterrole-aggregation controller
// fills `edit` and `view` with the rules of the ClusterRoles their aggregationRule
// selects. aggregate does that one step with the real roles' own selectors, so the
// test fails if our labels do not match them.
func TestUserRolesAggregate(t *testing.T) {
	ctx := context.Background()
	for _, f := range []string{"kubeplex_edit_role.yaml", "kubeplex_view_role.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "config", "rbac", f))
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(b, &role); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		create(t, &role)
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), &role) })
	}
	aggregate(t, "edit", "kubeplex-edit")
	aggregate(t, "view", "kubeplex-view")

	ns := newNamespace(t)
	_, editor := testCluster.User(t, "alice")
	_, viewer := testCluster.User(t, "bob")
	for user, role := range map[string]string{"alice": "edit", "bob": "view"} {
		create(t, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		})
	}

	app, d := newApp(ns, "web"), newDrain(ns, "archive", "web", "syslog://logs.example.test:514")
	if err := editor.Create(ctx, app); err != nil {
		t.Fatalf("edit user creating a LogApp: %v", err)
	}
	if err := editor.Create(ctx, d); err != nil {
		t.Fatalf("edit user creating a LogDrain: %v", err)
	}
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.URL = "syslog://logs.example.test:515"
	if err := editor.Patch(ctx, d, patch); err != nil {
		t.Errorf("edit user changing a LogDrain: %v", err)
	}
	patch = client.MergeFrom(d.DeepCopy())
	d.Status.Token = "d.forged"
	if err := editor.Status().Patch(ctx, d, patch); !apierrors.IsForbidden(err) {
		t.Errorf("edit user writing LogDrain status: %v, want Forbidden", err)
	}

	var drains kubeplexv1alpha1.LogDrainList
	if err := viewer.List(ctx, &drains, client.InNamespace(ns)); err != nil || len(drains.Items) != 1 {
		t.Errorf("view user listing LogDrains: %d items, %v", len(drains.Items), err)
	}
	if err := viewer.Get(ctx, client.ObjectKeyFromObject(app), &kubeplexv1alpha1.LogApp{}); err != nil {
		t.Errorf("view user reading a LogApp: %v", err)
	}
	if err := viewer.Create(ctx, newDrain(ns, "sneaky", "web", "syslog://logs.example.test:514")); !apierrors.IsForbidden(err) {
		t.Errorf("view user creating a LogDrain: %v, want Forbidden", err)
	}
	if err := viewer.Delete(ctx, d); !apierrors.IsForbidden(err) {
		t.Errorf("view user deleting a LogDrain: %v, want Forbidden", err)
	}
	// Reading logs is a view permission: view may ask for a LogSession here, not
	// elsewhere.
	if err := viewer.Create(ctx, newSession(ns, "tail", "web")); err != nil {
		t.Errorf("view user creating a LogSession: %v", err)
	}
	// Bound in ns only: nothing elsewhere.
	other := newNamespace(t)
	if err := viewer.Create(ctx, newSession(other, "tail", "web")); !apierrors.IsForbidden(err) {
		t.Errorf("view user creating a LogSession outside its namespace: %v, want Forbidden", err)
	}
	if err := editor.Create(ctx, newApp(other, "web")); !apierrors.IsForbidden(err) {
		t.Errorf("edit user creating a LogApp outside its namespace: %v, want Forbidden", err)
	}
}

// aggregate sets the rules of the built-in ClusterRole name to the union of the rules
// of the ClusterRoles its aggregationRule selects, as kube-controller-manager does,
// and fails unless ours is among them.
func aggregate(t *testing.T, name, ours string) {
	t.Helper()
	ctx := context.Background()
	var role rbacv1.ClusterRole
	if err := k8s.Get(ctx, client.ObjectKey{Name: name}, &role); err != nil {
		t.Fatal(err)
	}
	if role.AggregationRule == nil || len(role.AggregationRule.ClusterRoleSelectors) == 0 {
		t.Fatalf("ClusterRole %s has no aggregationRule", name)
	}
	var rules []rbacv1.PolicyRule
	var from []string
	for _, sel := range role.AggregationRule.ClusterRoleSelectors {
		s, err := metav1.LabelSelectorAsSelector(&sel)
		if err != nil {
			t.Fatal(err)
		}
		var l rbacv1.ClusterRoleList
		if err := k8s.List(ctx, &l, client.MatchingLabelsSelector{Selector: s}); err != nil {
			t.Fatal(err)
		}
		for _, r := range l.Items {
			if r.Name != name {
				rules = append(rules, r.Rules...)
				from = append(from, r.Name)
			}
		}
	}
	if !slices.Contains(from, ours) {
		t.Fatalf("the aggregationRule of %s selects %v, not %s", name, from, ours)
	}
	role.Rules = rules
	if err := k8s.Update(ctx, &role); err != nil {
		t.Fatal(err)
	}
}
