package deploy

import (
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

func template(image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: image}}},
	}
}

// The StatefulSet and DaemonSet forms of a rollout (the e2e test plays a Deployment's).
func TestWorkloadLinesStatefulSetDaemonSet(t *testing.T) {
	three := int32(3)
	ss := func(rev string, updated, available int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: 2},
			Spec:   appsv1.StatefulSetSpec{Replicas: &three, Template: template("pg:17")},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: updated, AvailableReplicas: available, UpdateRevision: rev}}
	}
	var r rollout
	var got []string
	steps := []*appsv1.StatefulSet{ss("db-1", 3, 3), ss("db-2", 0, 3), ss("db-2", 1, 2), ss("db-2", 1, 2), ss("db-2", 3, 3), ss("db-2", 3, 3)}
	for i := 1; i < len(steps); i++ {
		o, _ := workloadOf(steps[i-1])
		n, ok := workloadOf(steps[i])
		if !ok {
			t.Fatal("not a workload")
		}
		got = append(got, workloadLines(&o, &n, &r)...)
	}
	want := []string{
		"Rollout of db (StatefulSet) revision db-2 started (pg:17)",
		"Rollout of db (StatefulSet) revision db-2 progressing: 1 of 3 updated, 2 available",
		"Rollout of db (StatefulSet) revision db-2 complete: 3 of 3 up",
	}
	if !slices.Equal(got, want) {
		t.Errorf("statefulset:\n got %q\nwant %q", got, want)
	}

	ds := func(gen string, desired, updated, available int32) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "agent", Annotations: map[string]string{daemonSetRevision: gen}},
			Spec: appsv1.DaemonSetSpec{Template: template("agent:2")},
			Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: desired, CurrentNumberScheduled: desired,
				UpdatedNumberScheduled: updated, NumberAvailable: available}}
	}
	r = rollout{}
	o, _ := workloadOf(ds("1", 2, 2, 2))
	n, _ := workloadOf(ds("2", 2, 0, 2))
	got = workloadLines(&o, &n, &r)
	o, n = n, must(workloadOf(ds("2", 3, 3, 3)))
	got = append(got, workloadLines(&o, &n, &r)...)
	want = []string{"Rollout of agent (DaemonSet) revision 2 started (agent:2)", "Rollout of agent (DaemonSet) revision 2 complete: 3 of 3 up"}
	if !slices.Equal(got, want) {
		t.Errorf("daemonset:\n got %q\nwant %q", got, want)
	}

	// A workload whose pods carry no app label is nobody's.
	if _, ok := workloadOf(&appsv1.Deployment{}); ok {
		t.Error("a Deployment without the app label counted")
	}
}

func must(w workload, _ bool) workload { return w }

func TestDeploymentFailed(t *testing.T) {
	dep := func(cond []appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{deploymentRevision: "4"}},
			Spec:   appsv1.DeploymentSpec{Template: template("web:2")},
			Status: appsv1.DeploymentStatus{Replicas: 2, UpdatedReplicas: 1, AvailableReplicas: 1, Conditions: cond}}
	}
	r := rollout{Revision: "4"}
	o, _ := workloadOf(dep(nil))
	n, _ := workloadOf(dep([]appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-7d9f" has timed out progressing.`}}))
	got := workloadLines(&o, &n, &r)
	got = append(got, workloadLines(&n, &n, &r)...) // seen again: nothing new
	want := []string{`Rollout of web revision 4 failed: ReplicaSet "web-7d9f" has timed out progressing.`}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A container's end is written once whether it is first seen as the current state or
// only as the last state after the kubelet restarted it.
func TestContainerExitOnce(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	end := &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", StartedAt: t0,
		FinishedAt: metav1.NewTime(t0.Add(9 * time.Second)), ContainerID: "containerd://a"}
	terminated := &corev1.ContainerStatus{Name: "web", State: corev1.ContainerState{Terminated: end}}
	restarted := &corev1.ContainerStatus{Name: "web", RestartCount: 1, Image: "web:1",
		State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(10 * time.Second))}},
		LastTerminationState: corev1.ContainerState{Terminated: end}}
	got := containerLines("web.1", nil, terminated)
	got = append(got, containerLines("web.1", terminated, restarted)...)
	want := []string{"web.1: Process exited with status 3 (Error) after 9s", "web.1: Started (web:1, restart 1)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// Seen only after the restart: the end comes from the last state.
	got = containerLines("web.1", &corev1.ContainerStatus{Name: "web"}, restarted)
	if len(got) != 2 || got[0] != want[0] {
		t.Errorf("from last state: %q", got)
	}
}

func TestDisruptionAndEvents(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "worker-0", Labels: map[string]string{
		podIndexLabel: "0", kubeplexv1alpha1.ProcessTypeLabel: "worker"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}}}
	evicted := pod.DeepCopy()
	evicted.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "TerminationByKubelet", Message: "The node was low on resource: memory."}}
	failed := evicted.DeepCopy()
	failed.Status.Reason, failed.Status.Message = "Evicted", "The node was low on resource: memory."
	got := podLines(pod, evicted)
	got = append(got, podLines(evicted, failed)...) // the same eviction, said again by the phase
	want := []string{"worker.0: Evicted by the kubelet: The node was low on resource: memory."}
	if !slices.Equal(got, want) {
		t.Errorf("eviction: got %q, want %q", got, want)
	}

	ev := &corev1.Event{Reason: "Pulled", Message: `Container image "pg:17" already present on machine`, Count: 1,
		InvolvedObject: corev1.ObjectReference{FieldPath: "spec.containers{main}"}, Source: corev1.EventSource{Host: "node-2"}}
	if got := eventLine(nil, ev, pod); got != "worker.0: Image pg:17 already present on node-2" {
		t.Errorf("pulled: %q", got)
	}
	again := ev.DeepCopy()
	again.Count = 5
	if got := eventLine(ev, again, pod); got != "" {
		t.Errorf("a repeated Pulled event wrote %q", got)
	}
	kill := &corev1.Event{Reason: "Killing", Message: "Container main failed startup probe, will be restarted", Count: 1,
		InvolvedObject: ev.InvolvedObject}
	kill3 := kill.DeepCopy()
	kill3.Series = &corev1.EventSeries{Count: 3}
	for _, c := range []struct {
		o, n *corev1.Event
		want string
	}{
		{nil, kill, "worker.0: Killed by the kubelet: failed startup probe, restarting"},
		{kill, kill3, "worker.0: Killed by the kubelet: failed startup probe, restarting (2 times)"},
		{kill3, kill3, ""},
	} {
		if got := eventLine(c.o, c.n, pod); got != c.want {
			t.Errorf("kill: got %q, want %q", got, c.want)
		}
	}
}
