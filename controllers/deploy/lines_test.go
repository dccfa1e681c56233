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
	m := &containerMemory{}
	got, _ := containerLines("web.1", nil, terminated, m, t0.Time)
	more, _ := containerLines("web.1", terminated, restarted, m, t0.Time)
	got = append(got, more...)
	want := []string{"web.1: Process exited with status 3 (Error) after 9s", "web.1: Started (web:1, restart 1)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// Seen only after the restart: the end comes from the last state.
	got, _ = containerLines("web.1", &corev1.ContainerStatus{Name: "web"}, restarted, &containerMemory{}, t0.Time)
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
	mem := &memory{}
	got, _ := podLines(pod, evicted, mem, time.Now())
	more, _ := podLines(evicted, failed, mem, time.Now()) // the same eviction, said again by the phase
	got = append(got, more...)
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

// A crash loop is written when it starts and when it ends, not at every restart.
func TestCrashLoop(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(t0.Add(d)) }
	end := func(id string, from, to time.Duration) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error", StartedAt: at(from), FinishedAt: at(to), ContainerID: id}
	}
	run := func(restarts int32, from time.Duration, ready bool, last *corev1.ContainerStateTerminated) *corev1.ContainerStatus {
		return &corev1.ContainerStatus{Name: "web", Image: "web:1", RestartCount: restarts, Ready: ready,
			State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at(from)}},
			LastTerminationState: corev1.ContainerState{Terminated: last}}
	}
	backoff := func(restarts int32, last *corev1.ContainerStateTerminated) *corev1.ContainerStatus {
		return &corev1.ContainerStatus{Name: "web", Image: "web:1", RestartCount: restarts,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: last}}
	}
	e1, e2, e3 := end("c://1", 0, 9*time.Second), end("c://2", 20*time.Second, 25*time.Second), end("c://3", 40*time.Second, 41*time.Second)
	steps := []*corev1.ContainerStatus{
		run(0, 0, true, nil),
		backoff(1, e1), // crashed: the loop starts
		run(1, 20*time.Second, true, e1),
		backoff(2, e2), // and goes on: nothing
		run(2, 40*time.Second, true, e2),
		backoff(3, e3),
		run(3, time.Minute, false, e3),
		run(3, time.Minute, true, e3),
	}
	m := &containerMemory{}
	var got []string
	ups := 0
	for i, n := range steps {
		var o *corev1.ContainerStatus
		if i > 0 {
			o = steps[i-1]
		}
		lines, up := containerLines("web.1", o, n, m, t0)
		got = append(got, lines...)
		if up {
			ups++
		}
	}
	want := []string{
		"web.1: Started (web:1)", "web.1: Up (ready)",
		"web.1: Process exited with status 1 (Error) after 9s",
		"web.1: State changed from up to crashed (restart count 1): in a crash loop, the kubelet restarts it with growing delays (CrashLoopBackOff); restarts are not written until it stays up 10m",
	}
	if !slices.Equal(got, want) {
		t.Errorf("crash loop:\n got %q\nwant %q", got, want)
	}
	if ups != 3 {
		t.Errorf("%d runs in the loop to watch, want 3", ups)
	}
	// The last run stays up: the check after StayUp ends the loop, once; an older
	// run's check says nothing.
	last := steps[len(steps)-1]
	if got := upAgain("web.1", last, m, at(40*time.Second)); got != "" {
		t.Errorf("an older run's check wrote %q", got)
	}
	if got := upAgain("web.1", last, m, at(time.Minute)); got != "web.1: State changed from crashed to up: running 10m since restart 3" {
		t.Errorf("up again: %q", got)
	}
	if got := upAgain("web.1", last, m, at(time.Minute)); got != "" {
		t.Errorf("up again twice: %q", got)
	}
	// In a loop, a run that lasted StayUp before it ended starts a new story.
	m = &containerMemory{Loop: true}
	long := end("c://9", time.Minute, time.Minute+StayUp+time.Second)
	got, _ = containerLines("web.1", last, backoff(4, long), m, t0)
	if len(got) != 2 || got[0] != "web.1: Process exited with status 1 (Error) after 10m1s" {
		t.Errorf("after a long run: %q", got)
	}
}

func TestSchedulingAndPull(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f-a1b2c"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}}
	pending := func(msg string) *corev1.Pod {
		p := pod.DeepCopy()
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, Message: msg}}
		return p
	}
	p1 := pending("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	p2 := pending("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")
	scheduled := p2.DeepCopy()
	scheduled.Spec.NodeName = "node-1"
	scheduled.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	mem := &memory{}
	var got []string
	for _, step := range [][2]*corev1.Pod{{nil, p1}, {p1, p2}, {p2, scheduled}} {
		lines, _ := podLines(step[0], step[1], mem, time.Now())
		got = append(got, lines...)
	}
	want := []string{"web.a1b2c: Cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu", "web.a1b2c: Scheduled on node-1"}
	if !slices.Equal(got, want) {
		t.Errorf("scheduling:\n got %q\nwant %q", got, want)
	}

	wait := func(reason, msg string) *corev1.ContainerStatus {
		return &corev1.ContainerStatus{Name: "web", Image: "registry.example/web:9",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	pullErr := wait("ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/web:9": `+
		`failed to resolve reference "registry.example/web:9": registry.example/web:9: not found`)
	backOff := wait("ImagePullBackOff", `Back-off pulling image "registry.example/web:9": ErrImagePull: rpc error: code = NotFound desc = …`)
	steps := []*corev1.ContainerStatus{wait("ContainerCreating", ""), pullErr, backOff, pullErr, backOff}
	m := &containerMemory{}
	got = nil
	for i := 1; i < len(steps); i++ {
		lines, _ := containerLines("web.a1b2c", steps[i-1], steps[i], m, time.Now())
		got = append(got, lines...)
	}
	want = []string{`web.a1b2c: Cannot pull image registry.example/web:9 (ErrImagePull): failed to resolve reference "registry.example/web:9": registry.example/web:9: not found`}
	if !slices.Equal(got, want) {
		t.Errorf("pull failure:\n got %q\nwant %q", got, want)
	}
	never := wait("ErrImageNeverPull", `Container image "example.invalid/missing:1" is not present with pull policy of Never`)
	never.Image = "example.invalid/missing:1"
	got, _ = containerLines("web.a1b2c", nil, never, &containerMemory{}, time.Now())
	want = []string{"web.a1b2c: Cannot start: image example.invalid/missing:1 is not on the node and its pull policy is Never (ErrImageNeverPull)"}
	if !slices.Equal(got, want) {
		t.Errorf("never pull:\n got %q\nwant %q", got, want)
	}
}

// Readiness: one line per turn to not ready (quoting the probe), none per probe.
func TestReadiness(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	started := metav1.NewTime(now.Add(-time.Minute))
	cs := func(ready bool) *corev1.ContainerStatus {
		return &corev1.ContainerStatus{Name: "web", Image: "web:1", Ready: ready,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}
	}
	probe, detail := probeFailure("Readiness probe failed: HTTP probe failed with statuscode: 503")
	if probe != "Readiness" || detail != "HTTP probe failed with statuscode: 503" {
		t.Fatalf("probeFailure = %q, %q", probe, detail)
	}
	if p, d := probeFailure(`(combined from similar events): Liveness probe errored: rpc error: timeout`); p != "Liveness" || d != "rpc error: timeout" {
		t.Errorf("probeFailure combined = %q, %q", p, d)
	}
	m := &containerMemory{}
	var got []string
	add := func(lines []string, _ bool) { got = append(got, lines...) }
	add(containerLines("web.1", nil, cs(true), m, now))
	// Failures below the threshold while ready: nothing, but remembered.
	if l := readinessLine("web.1", cs(true), m, detail, 1, now); l != "" {
		t.Errorf("a failure while ready wrote %q", l)
	}
	add(containerLines("web.1", cs(true), cs(false), m, now))
	if l := readinessLine("web.1", cs(false), m, detail, 5, now); l != "" {
		t.Errorf("more failures of the same spell wrote %q", l)
	}
	add(containerLines("web.1", cs(false), cs(true), m, now))
	// A stale message is not quoted.
	add(containerLines("web.1", cs(true), cs(false), m, now.Add(time.Hour)))
	want := []string{"web.1: Started (web:1)", "web.1: Up (ready)",
		"web.1: Not ready: its readiness probe fails (HTTP probe failed with statuscode: 503)",
		"web.1: Up (ready)", "web.1: Not ready: its readiness probe fails"}
	if !slices.Equal(got, want) {
		t.Errorf("readiness:\n got %q\nwant %q", got, want)
	}

	// Never ready in this run: written once, after neverReadyFails failures.
	m = &containerMemory{}
	containerLines("web.1", nil, cs(false), m, now)
	got = nil
	for _, n := range []int32{1, 1, 1, 4} {
		if l := readinessLine("web.1", cs(false), m, detail, n, now); l != "" {
			got = append(got, l)
		}
	}
	want = []string{"web.1: Not ready: its readiness probe failed 3 times since it started (HTTP probe failed with statuscode: 503)"}
	if !slices.Equal(got, want) {
		t.Errorf("never ready:\n got %q\nwant %q", got, want)
	}
}

// The actor of a scale or rollout: the manager owning spec.replicas / spec.template,
// newest first, status writes and the controller's annotation write aside.
func TestOwner(t *testing.T) {
	at := func(s int) *metav1.Time { v := metav1.NewTime(time.Unix(int64(s), 0)); return &v }
	f := metav1.NewFieldsV1
	entries := []metav1.ManagedFieldsEntry{
		{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(1),
			FieldsV1: f(`{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{}}}}`)},
		{Manager: "kubectl-set", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(5),
			FieldsV1: f(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{}}}}}`)},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(6),
			FieldsV1: f(`{"f:metadata":{"f:annotations":{"f:deployment.kubernetes.io/revision":{}}}}`)},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(7), Subresource: "status",
			FieldsV1: f(`{"f:status":{}}`)},
		{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(8), Subresource: "scale",
			FieldsV1: f(`{"f:spec":{"f:replicas":{}}}`)},
	}
	if got := owner(entries, "f:replicas"); got != "kubectl" {
		t.Errorf("scaled by %q", got)
	}
	if got := owner(entries, "f:template"); got != "kubectl-set" {
		t.Errorf("rolled by %q", got)
	}
	// The cache's cut-down copy answers the same.
	slim := slimManaged(entries)
	if len(slim) != 3 || owner(slim, "f:replicas") != "kubectl" || owner(slim, "f:template") != "kubectl-set" {
		t.Errorf("slim managedFields %+v", slim)
	}
	if got := owner(nil, "f:replicas"); got != "" {
		t.Errorf("no managedFields: %q", got)
	}
}
