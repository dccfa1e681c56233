package controllers

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// TestLogAppHostConflict: a host claimed by LogApps in two namespaces goes to neither
// and shows as HostsClaimed=False (naming the other) in both, the older one too; when one
// gives it up, the other's condition turns True without it being touched. The app's
// collector Secret is made beside its token Secret.
func TestLogAppHostConflict(t *testing.T) {
	startManager(t, Config{})
	ns1, ns2 := newNamespace(t), newNamespace(t)
	a := newApp(ns1, "shop")
	a.Spec.Hosts = []string{"shop.example.com", "a.example.com"}
	create(t, a)
	condition(t, a, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason)
	// Beside the token Secret: the collector credential, owned by the app.
	cs := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns1, Name: "shop" + kubeplexv1alpha1.CollectorSecretSuffix}, cs); err != nil {
		t.Fatal(err)
	}
	if tok := string(cs.Data[kubeplexv1alpha1.TokenSecretKey]); !strings.HasPrefix(tok, "c.") || !metav1.IsControlledBy(cs, a) {
		t.Errorf("collector secret: token prefix %q, controlled by app %v", tok[:min(2, len(tok))], metav1.IsControlledBy(cs, a))
	}
	b := newApp(ns2, "copycat")
	b.Spec.Hosts = []string{"Shop.Example.com."}
	create(t, b)
	cb := condition(t, b, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionFalse, kubeplexv1alpha1.HostConflictReason)
	ca := condition(t, a, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionFalse, kubeplexv1alpha1.HostConflictReason)
	if !strings.Contains(ca.Message, ns2+"/copycat") || !strings.Contains(cb.Message, ns1+"/shop") {
		t.Errorf("messages %q / %q do not name the other claimant", ca.Message, cb.Message)
	}
	get(t, b)
	b.Spec.Hosts = []string{"copycat.example.com"}
	if err := k8s.Update(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	condition(t, a, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason)
	condition(t, b, kubeplexv1alpha1.HostsClaimedCondition, metav1.ConditionTrue, kubeplexv1alpha1.HostsRoutedReason)
}
