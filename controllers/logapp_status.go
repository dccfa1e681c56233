package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

func (r *LogAppReconciler) setTokenIssued(app *kubeplexv1alpha1.LogApp, status metav1.ConditionStatus, reason, msg string) {
	setCondition(r.Recorder, app, &app.Status.Conditions, kubeplexv1alpha1.TokenIssuedCondition, status, reason, msg)
}

func (r *LogAppReconciler) setReady(app *kubeplexv1alpha1.LogApp, status metav1.ConditionStatus, reason, msg string) {
	setCondition(r.Recorder, app, &app.Status.Conditions, kubeplexv1alpha1.ReadyCondition, status, reason, msg)
}

// reconcilePods counts the app's pods (labelled kubeplex.io/app=<name>, the label the
// injection webhook goes by) and what the webhook did to them, from the annotations
// it leaves (kubeplex.io/injection).
func (r *LogAppReconciler) reconcilePods(ctx context.Context, app *kubeplexv1alpha1.LogApp) error {
	pods := &metav1.PartialObjectMetadataList{}
	pods.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PodList"))
	byApp := client.MatchingLabels{kubeplexv1alpha1.AppLabel: app.Name}
	if err := r.Client.List(ctx, pods, client.InNamespace(app.Namespace), byApp); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var n, injected, skipped int32
	for _, p := range pods.Items {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		n++
		switch p.Annotations[kubeplexv1alpha1.InjectionAnnotation] {
		case kubeplexv1alpha1.InjectionInjected:
			injected++
		case kubeplexv1alpha1.InjectionSkipped:
			skipped++
		}
	}
	app.Status.Pods, app.Status.InjectedPods, app.Status.UninjectedPods = n, injected, skipped
	return nil
}

func (r *LogAppReconciler) reconcileDrainCount(ctx context.Context, app *kubeplexv1alpha1.LogApp) error {
	var drains kubeplexv1alpha1.LogDrainList
	if err := r.Client.List(ctx, &drains, client.InNamespace(app.Namespace), client.MatchingFields{drainAppIndex: app.Name}); err != nil {
		return fmt.Errorf("list drains: %w", err)
	}
	app.Status.Drains = int32(len(drains.Items))
	return nil
}
