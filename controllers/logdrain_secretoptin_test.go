package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestSecretExfiltrationRefused is issue 11's attack, as tried on the dev stack: a
// user who may write LogDrains but not read Secrets points a drain's
// credentialsSecretRef at a Secret of the namespace. The manager can read it; before,
// it copied it into the routing table and the router sent it as Basic auth to the
// user's own listener. Now a Secret must opt in: this one did not, so the drain is
// Ready=False/SecretNotAllowed and the password is nowhere in the routing table (the
// only thing routers read). Once whoever owns the Secret opts it in, it is used.
func TestSecretExfiltrationRefused(t *testing.T) {
	startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	const password = "db-password-never-leaves"
	create(t, newApp(ns, "web"))
	dbCreds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-creds"},
		StringData: map[string]string{"username": "db", "password": password}}
	create(t, dbCreds)

	// The attacker: LogDrains yes, Secrets no.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drain-author"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{kubeplexv1alpha1.GroupVersion.Group}, Resources: []string{"logdrains", "logapps"}, Verbs: []string{"get", "list", "create", "update"}},
	}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "drain-author"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "drain-author"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "drain-author-" + ns}}}
	create(t, role, binding)
	_, attacker := testCluster.User(t, "drain-author-"+ns)
	if err := attacker.Get(ctx, client.ObjectKeyFromObject(dbCreds), &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the attacker reads the Secret directly (%v): the test would prove nothing", err)
	}
	steal := newDrain(ns, "steal", "web", "https://allowed.test/collect")
	steal.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: "db-creds"}
	testenv.Eventually(t, "attacker creates the drain", func() error { return attacker.Create(ctx, steal) })

	c := condition(t, steal, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.SecretNotAllowedReason)
	if strings.Contains(c.Message, password) {
		t.Errorf("condition message repeats the password: %q", c.Message)
	}
	// Another drain of the app makes a table write happen after the refusal.
	create(t, newDrain(ns, "plain", "web", "https://allowed.test/plain"))
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 {
			return fmt.Errorf("drains %v, want only the plain one", drainIDs(a))
		}
		return nil
	})
	tb, err := readTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(tb)
	if strings.Contains(string(js), password) {
		t.Fatal("the routing table carries the Secret's password: routers would send it")
	}

	// The Secret's owner opts it in: now it is the drain's to use.
	get(t, dbCreds)
	dbCreds.Labels = map[string]string{kubeplexv1alpha1.DrainCredentialsLabel: "true"}
	if err := k8s.Update(ctx, dbCreds); err != nil {
		t.Fatal(err)
	}
	condition(t, steal, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		for _, d := range drainsOf(a) {
			if d.ID == routes.ID(ns, "steal") && d.Password == password {
				return nil
			}
		}
		return fmt.Errorf("opted-in credentials not in the table")
	})
}

func drainsOf(a *routing.App) []routing.Drain {
	if a == nil {
		return nil
	}
	return a.Drains
}
