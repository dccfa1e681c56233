package owner

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSet(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "kubeplex-manager", UID: "new"}}
	ref := Ref(d)
	other := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "cm"}
	stale := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "kubeplex-manager", UID: "old"}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{OwnerReferences: []metav1.OwnerReference{other, stale}}}
	if Has(s, ref) || !Set(s, ref) {
		t.Fatal("a secret owned by an earlier deployment of the name was taken as owned")
	}
	got := s.OwnerReferences
	if len(got) != 2 || got[0].UID != "cm" || got[1].UID != "new" {
		t.Fatalf("owners %+v: want the other owner kept and the stale deployment replaced", got)
	}
	if Set(s, ref) || !Has(s, ref) {
		t.Error("a second Set changed an owned secret")
	}
	if Set(s, nil) || !Has(s, nil) {
		t.Error("a nil owner changed the secret or was not had")
	}
}
