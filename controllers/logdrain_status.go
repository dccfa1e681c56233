package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/platform"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
)

func (r *LogDrainReconciler) setReady(d *kubeplexv1alpha1.LogDrain, status metav1.ConditionStatus, reason, msg string) {
	setCondition(r.Recorder, d, &d.Status.Conditions, kubeplexv1alpha1.ReadyCondition, status, reason, msg)
}

// setDelivering sets the Delivering condition, which only a manager reading the
// routers' reports can know about.
func (r *LogDrainReconciler) setDelivering(d *kubeplexv1alpha1.LogDrain, status metav1.ConditionStatus, reason, msg string) {
	if r.Health == nil {
		return
	}
	setCondition(r.Recorder, d, &d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition, status, reason, msg)
}

// reconcileHealth writes the routers' view of the drain: the Delivering condition
// at once when its state changes, counters and last error at most once per
// StatusInterval otherwise (coming back when the interval ends).
func (r *LogDrainReconciler) reconcileHealth(ctx context.Context, d *kubeplexv1alpha1.LogDrain) ctrl.Result {
	if r.Health == nil {
		return ctrl.Result{}
	}
	sum := r.Health.Get(routes.ID(d.Namespace, d.Name))
	status, reason, msg := deliveringCondition(sum)
	old := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition)
	stateChanged := old == nil || old.Status != status || old.Reason != reason

	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.remember(d)
	if m.seed == nil {
		// Counts from before this manager started are in status already; the store
		// counts only what routers delivered since.
		m.seed = &seed{d.Status.Delivered, d.Status.Dropped}
	}
	sd := *m.seed
	want := d.Status.DeepCopy()
	want.Delivered = max(sd.delivered, sum.BaselineDelivered) + sum.Delivered
	want.Dropped = max(sd.dropped, sum.BaselineDropped) + sum.Dropped
	if sum.LastSuccess != nil {
		want.LastDeliveryTime = &metav1.Time{Time: sum.LastSuccess.Truncate(time.Second)}
	}
	if sum.LastError != "" {
		want.LastError = sum.LastError
	}
	countersChanged := !equality.Semantic.DeepEqual(want, &d.Status)
	if !stateChanged && !countersChanged {
		return ctrl.Result{}
	}
	interval := r.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}
	if !stateChanged {
		if wait := interval - now.Sub(m.lastCounts); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}
		}
	}
	m.lastCounts = now
	d.Status.Delivered, d.Status.Dropped = want.Delivered, want.Dropped
	d.Status.LastDeliveryTime, d.Status.LastError = want.LastDeliveryTime, want.LastError
	// Read before setCondition, which updates old's element in place.
	wasFailing := old != nil && old.Status == metav1.ConditionFalse
	setCondition(r.Recorder, d, &d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition, status, reason, msg)
	if stateChanged {
		r.announceDelivery(ctx, d, wasFailing, status, sum.LastError)
	}
	return ctrl.Result{}
}

// announceDelivery writes kubeplex[router] "failing" when the drain's delivery turns
// False and "recovered" when a failing drain delivers again. The state lives in the
// LogDrain's status, so a restarted or new leader does not say it twice. The error is
// the routers' redacted one (no URL credentials). A namespace-wide drain's lines go
// to each app it covers, naming the token that app's lines carry to it.
func (r *LogDrainReconciler) announceDelivery(ctx context.Context,
	d *kubeplexv1alpha1.LogDrain, wasFailing bool, status metav1.ConditionStatus, lastErr string,
) {
	var text string
	pri := uint8(0)
	switch {
	case status == metav1.ConditionFalse && !wasFailing:
		text, pri = " failing: "+lastErr, wire.PriorityError
	case status == metav1.ConditionTrue && wasFailing:
		text = " recovered"
	default:
		return
	}
	if d.Spec.AppRef.Name != "" {
		r.Platform.Emit(platform.Line{App: routes.ID(d.Namespace, d.Spec.AppRef.Name), Proc: routing.ProcRouter, Priority: pri,
			Text: "Drain " + d.Status.Token + text})
		return
	}
	apps, err := coveredApps(ctx, r.Client, d.Namespace, d.Spec.AppSelector)
	if err != nil {
		logf.FromContext(ctx).Error(err, "namespace-wide drain: list the apps to tell of its delivery")
		return
	}
	for _, app := range apps {
		r.Platform.Emit(platform.Line{App: routes.ID(d.Namespace, app), Proc: routing.ProcRouter, Priority: pri,
			Text: "Drain " + routes.InstanceToken(d.Status.Token, app) + text})
	}
}

type seed struct{ delivered, dropped int64 }

func deliveringCondition(s health.Summary) (metav1.ConditionStatus, string, string) {
	switch s.State() {
	case health.StateFailing:
		return metav1.ConditionFalse, kubeplexv1alpha1.DeliveryFailedReason, "delivery failing: " + s.LastError
	case health.StateDelivered:
		return metav1.ConditionTrue, kubeplexv1alpha1.DeliveredReason, "routers deliver to the drain"
	case health.StateNoTraffic:
		return metav1.ConditionUnknown, kubeplexv1alpha1.NoTrafficReason, "routers carry the drain; nothing delivered yet"
	default:
		return metav1.ConditionUnknown, kubeplexv1alpha1.NoRouterReportReason, "no router has reported on this drain yet"
	}
}
