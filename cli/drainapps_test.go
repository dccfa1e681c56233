package cli_test

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/cli"
)

// TestNamespaceDrainCells: which drains cover an app (their selector against its
// labels) and how `drains list` shows a namespace-wide drain's APP.
func TestNamespaceDrainCells(t *testing.T) {
	web := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"tier": "front"}}}
	drain := func(ns string, ref string, sel *metav1.LabelSelector, apps int32) *kubeplexv1alpha1.LogDrain {
		return &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "d"},
			Spec:   kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: ref}, AppSelector: sel},
			Status: kubeplexv1alpha1.LogDrainStatus{Apps: apps}}
	}
	tests := []struct {
		name   string
		d      *kubeplexv1alpha1.LogDrain
		covers bool
		cell   string
	}{
		{"app drain", drain("shop", "web", nil, 0), true, "web"},
		{"other app", drain("shop", "api", nil, 0), false, "api"},
		{"every app", drain("shop", "", &metav1.LabelSelector{}, 3), true, "*(3)"},
		{"matching labels", drain("shop", "", &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "front"}}, 1), true, "*{tier=front}(1)"},
		{"other labels", drain("shop", "", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"back", "batch"}}}}, 2), false, "*{tier in (back,batch)}(2)"},
		{"other namespace", drain("bank", "", &metav1.LabelSelector{}, 1), false, "*(1)"},
	}
	for _, tt := range tests {
		if got := cli.CoversApp(tt.d, web); got != tt.covers {
			t.Errorf("%s: CoversApp = %v", tt.name, got)
		}
		if got := cli.DrainAppCell(tt.d); got != tt.cell {
			t.Errorf("%s: cell %q, want %q", tt.name, got, tt.cell)
		}
	}
}
