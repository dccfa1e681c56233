package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/platform"
)

// TestAPILineTexts: which fields changed, who did it (the newest spec-level field
// manager, never a status writer), and drain URLs without credentials.
func TestAPILineTexts(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	managed := []metav1.ManagedFieldsEntry{
		{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, Time: &t0},
		{Manager: "helm", Operation: metav1.ManagedFieldsOperationApply, Time: &t1},
		{Manager: "kubeplex-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: &t1, Subresource: "status"},
	}
	old := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "archive", Namespace: "shop", ManagedFields: managed},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: "https://u:pw@logs.example.com/in?key=k1"}}
	cur := old.DeepCopy()
	cur.Spec.URL = "syslog+tls://logs2.example.com:6514"
	cur.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: "creds"}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"created", texts(CreatedLines(old, nil)), []string{"shop/web LogDrain archive created (https://logs.example.com) by helm"}},
		{"changed", texts(ChangedLines(old, cur, nil)), []string{
			"shop/web LogDrain archive changed spec.credentialsSecretRef, spec.url (now syslog+tls://logs2.example.com:6514) by helm"}},
		{"status only", texts(ChangedLines(old, old.DeepCopy(), nil)), nil},
		{"deleted", texts(DeletedLines(cur, nil)), []string{"shop/web LogDrain archive deleted"}},
	}
	for _, tt := range tests {
		if strings.Join(tt.got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
		for _, l := range tt.got {
			if strings.Contains(l, "pw") || strings.Contains(l, "k1") {
				t.Errorf("%s: a credential in %q", tt.name, l)
			}
		}
	}
	moved := cur.DeepCopy()
	moved.Spec.AppRef.Name = "api"
	if got := texts(ChangedLines(cur, moved, nil)); len(got) != 2 || !strings.HasPrefix(got[0], "shop/api ") || !strings.HasPrefix(got[1], "shop/web LogDrain archive moved to LogApp api") {
		t.Errorf("moved: %q", got)
	}
	// A namespace-wide drain's lines go to each app it covers; a selector change is
	// told to the apps covered before and after.
	ns := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: "shop", ManagedFields: managed},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppSelector: &metav1.LabelSelector{}, URL: "otlp+https://otel.example.com/t/s3cr3t"}}
	narrowed := ns.DeepCopy()
	narrowed.Spec.AppSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "backend"}}
	covered := func(_ string, sel *metav1.LabelSelector) []string {
		if len(sel.MatchLabels) > 0 {
			return []string{"worker"}
		}
		return []string{"web", "worker"}
	}
	for name, tt := range map[string]struct{ got, want []string }{
		"ns created": {texts(CreatedLines(ns, covered)), []string{
			"shop/web LogDrain all created for every app of the namespace (otlp+https://otel.example.com) by helm",
			"shop/worker LogDrain all created for every app of the namespace (otlp+https://otel.example.com) by helm"}},
		"ns narrowed": {texts(ChangedLines(ns, narrowed, covered)), []string{
			"shop/worker LogDrain all changed spec.appSelector (now covers the namespace's apps matching tier=backend) by helm",
			"shop/web LogDrain all changed spec.appSelector (now covers the namespace's apps matching tier=backend) by helm"}},
		"ns deleted": {texts(DeletedLines(narrowed, covered)), []string{"shop/worker LogDrain all deleted"}},
	} {
		if strings.Join(tt.got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s: %q, want %q", name, tt.got, tt.want)
		}
	}
	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	rot := app.DeepCopy()
	rot.Annotations = map[string]string{kubeplexv1alpha1.RotateTokenAnnotation: "2026-11-25"}
	if got := texts(ChangedLines(app, rot, nil)); len(got) != 1 || got[0] != "shop/web LogApp web: ingest token rotation requested" {
		t.Errorf("rotation: %q", got)
	}
}

func texts(ls []platform.Line) []string {
	var out []string
	for _, l := range ls {
		if l.Proc != ProcAPI {
			out = append(out, "wrong process "+l.Proc)
		}
		out = append(out, l.App+" "+l.Text)
	}
	return out
}
