package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestLogDrainMemoryPruned: what the reconciler keeps per drain (policy answer,
// counter seed, last counter write) and what the health store accumulated for it go
// when the drain is deleted; the other drains' memory stays.
func TestLogDrainMemoryPruned(t *testing.T) {
	m := startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	app := newApp(ns, "web")
	create(t, app)
	condition(t, app, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	keep, gone := newDrain(ns, "keep", "web", "syslog://127.0.0.2:514"), newDrain(ns, "gone", "web", "syslog://127.0.0.2:515")
	create(t, keep, gone)
	for _, d := range []*kubeplexv1alpha1.LogDrain{keep, gone} {
		condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	}

	store := health.NewStore(time.Now().Add(-time.Hour), time.Second)
	goneID := routes.ID(ns, "gone")
	store.Update(time.Now(), []routing.RouterStatus{{Router: "r0", Started: time.Now(),
		Drains: map[string]routing.DrainStatus{goneID: {Delivered: 5}, routes.ID(ns, "keep"): {Delivered: 3}}}})
	r := &LogDrainReconciler{Client: m.client, APIReader: k8s, Recorder: discardRecorder{}, Policy: testPolicy(t), Health: store}
	remembered := func() map[string]bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		out := map[string]bool{}
		for k, v := range r.memory {
			out[k.Name] = v.seed != nil && v.verdict != nil
		}
		return out
	}
	for _, d := range []*kubeplexv1alpha1.LogDrain{keep, gone} {
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(d)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := remembered(); len(got) != 2 || !got["keep"] || !got["gone"] {
		t.Fatalf("after reconciling two drains the reconciler remembers %v, want both with seed and verdict", got)
	}
	if store.Get(goneID).Delivered != 5 {
		t.Fatalf("store before deletion: %+v", store.Get(goneID))
	}

	if err := k8s.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	// The deletion reaches the reconciler once its cache no longer holds the drain.
	testenv.Eventually(t, "drain gone from the cache", func() error {
		err := m.client.Get(ctx, client.ObjectKeyFromObject(gone), &kubeplexv1alpha1.LogDrain{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get: %w", err)
	})
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(gone)}); err != nil {
		t.Fatal(err)
	}
	if got := remembered(); len(got) != 1 || !got["keep"] {
		t.Errorf("after deleting drain gone the reconciler remembers %v, want only keep", got)
	}
	if s := store.Get(goneID); s.Delivered != 0 {
		t.Errorf("health store still counts %d delivered for the deleted drain", s.Delivered)
	}
	if s := store.Get(routes.ID(ns, "keep")); s.Delivered != 3 {
		t.Errorf("health store lost the kept drain's count: %+v", s)
	}
}

var reconcileTerminal = reconcile.TerminalError(nil)

// failingReader fails every read, as an API server that is briefly unreachable does.
type failingReader struct{ client.Reader }

func (failingReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return errors.New("connection refused")
}

// TestObservedGenerationOnVerdict: status.observedGeneration moves to a generation
// only when a reconcile reached a verdict on it (accepted, or refused with a reason);
// a transient failure leaves it behind. No manager runs: the test's reconcilers are
// the only writers.
func TestObservedGenerationOnVerdict(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	d := newDrain(ns, "creds", "web", "http://127.0.0.2:8080/logs")
	d.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: "absent"}
	create(t, d)
	works := &LogDrainReconciler{Client: k8s, APIReader: k8s, Recorder: discardRecorder{}, Policy: testPolicy(t)}
	fails := &LogDrainReconciler{Client: k8s, APIReader: failingReader{}, Recorder: discardRecorder{}, Policy: testPolicy(t)}
	reconcileOnce := func(r *LogDrainReconciler) error {
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(d)})
		get(t, d)
		return err
	}
	stamped := func(what string, want int64) {
		t.Helper()
		if d.Status.ObservedGeneration != want {
			t.Errorf("%s: observedGeneration %d, want %d (generation %d)", what, d.Status.ObservedGeneration, want, d.Generation)
		}
	}

	if err := reconcileOnce(works); err == nil {
		t.Fatal("a drain with a missing credentials Secret reconciled without error")
	}
	stamped("refused for a missing Secret (a verdict)", 1)

	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.CredentialsSecretRef.Name = "other"
	if err := k8s.Patch(ctx, d, patch); err != nil {
		t.Fatal(err)
	}
	if err := reconcileOnce(fails); err == nil || errors.Is(err, reconcileTerminal) {
		t.Fatalf("reconcile with an unreachable API: %v, want a transient error", err)
	}
	stamped("transient failure on generation 2", 1)

	if err := reconcileOnce(works); err == nil {
		t.Fatal("a drain with a missing credentials Secret reconciled without error")
	}
	stamped("refused again, now for generation 2", 2)
}
