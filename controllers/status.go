package controllers

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Condition, patch and event helpers shared by the LogApp and LogDrain reconcilers,
// so both report a state the same way.

// setCondition sets a condition stamped with the object's generation and records an
// Event when its status or reason changes (a state change), not when only the
// message does. A condition that first appears as Unknown is no event: nothing has
// happened yet. False is a Warning; True and Unknown are Normal.
func setCondition(
	rec EventRecorder, obj client.Object, conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string,
) {
	old := findCondition(*conds, typ)
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: obj.GetGeneration(),
	})
	if old == nil && status == metav1.ConditionUnknown {
		return
	}
	if old != nil && old.Status == status && old.Reason == reason {
		return
	}
	evType := corev1.EventTypeNormal
	if status == metav1.ConditionFalse {
		evType = corev1.EventTypeWarning
	}
	rec.Eventf(obj, nil, evType, reason, "Reconcile", "%s=%s: %s", typ, status, msg)
}

// findCondition returns a copy of the condition of type typ, or nil. A copy, because
// meta.SetStatusCondition updates the slice element in place.
func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return nil
	}
	cp := *c
	return &cp
}

// observed reports whether a reconcile that ended with err reached a verdict on the
// object's current generation: it succeeded, or it found the spec unusable (a
// TerminalError with a False condition saying why). A transient error (an API call
// that failed) leaves status.observedGeneration where it was, so a reader comparing
// it with metadata.generation sees that this generation is still being worked on.
func observed(err error) bool {
	return err == nil || errors.Is(err, reconcile.TerminalError(nil))
}

// patchStatus writes the status as a merge patch from base, and nothing when the
// status did not change (a second reconcile of an unchanged object writes nothing).
// An object deleted meanwhile has no status left to write.
func patchStatus(ctx context.Context, c client.Client, kind string, base, obj client.Object, baseStatus, status any) error {
	if equality.Semantic.DeepEqual(baseStatus, status) {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFrom(base)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patch %s status: %w", kind, err)
	}
	return nil
}

// EventRecorder records Kubernetes Events (events.k8s.io); the manager's
// GetEventRecorder fits. Notes never carry tokens, passwords or URL userinfo.
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// specError is a problem with the object's spec (or what it refers to) that retrying
// will not fix; it becomes a False condition with reason and a TerminalError. Watches
// bring the object back when what it waits for changes.
type specError struct {
	reason string
	msg    string
}

func (e *specError) Error() string { return e.msg }
