package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestDeployLines plays a Deployment's life on a real API server (envtest runs no
// controllers and no kubelet, so the test writes what the deployment controller, the
// scheduler and the kubelet would: the revision annotation, status, ReplicaSet, pods,
// bindings, container states and Events, each under the field manager the real one
// uses) and checks that two real managers write the expected kubeplex[deploy] lines
// through a real router, in order and each once (the leader alone writes); then the
// leader stops, the other takes over and nothing already written comes again.
func TestDeployLines(t *testing.T) {
	s := newStack(t)
	c, ctx := s.cluster, s.ctx
	r := s.startRouter(t, nil)
	routerURL := r.URL
	managerArgs := s.managerArgs(true, r, "--router-status-interval", "500ms")
	mgr := start(t, "manager", managerArgs...)
	// A leader watches the workloads of the namespaces that have a LogApp.
	leads := func(p *testenv.Process) bool {
		return strings.Contains(p.Out.String(), `"msg":"deploy source watches the namespace's workloads"`)
	}
	sink := startSyslogSink(t)

	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	drain := drainTo("first", sink.addr)
	for _, o := range []client.Object{app, drain} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Until(t, "the first manager leads", func() bool { return leads(mgr) })
	other := start(t, "manager", managerArgs...) // a follower: writes nothing
	token := appToken(t, c, app)
	drainReady(t, c, drain)
	markersThrough(t, sink, []string{routerURL}, token, "marker-0")

	var want []string
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// step does something and waits for the lines it must bring (those of one
	// informer arrive in order; the next step waits for them so order holds across).
	step := func(what string, do func(), lines ...string) {
		t.Helper()
		do()
		want = append(want, lines...)
		testenv.Eventually(t, what, func() error {
			got := deployLines(sink)
			for _, l := range lines {
				if !slices.Contains(got, l) {
					return fmt.Errorf("no %q yet; have %q", l, got)
				}
			}
			return nil
		})
	}
	// Each write names its field manager, as kubectl, helm and the controllers do:
	// the actor of a scale or rollout is read from managedFields.
	updateAs := func(owner string, o client.Object, change func()) {
		t.Helper()
		testenv.Eventually(t, "update "+o.GetName(), func() error {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			change()
			return c.Client.Update(ctx, o, client.FieldOwner(owner))
		})
	}
	update := func(o client.Object, change func()) { t.Helper(); updateAs("e2e", o, change) }
	controller := "kube-controller-manager"
	scale := func(dep *appsv1.Deployment, n int32) {
		t.Helper()
		must(c.Client.SubResource("scale").Update(ctx, dep, client.WithSubResourceBody(&autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: dep.Name, Namespace: dep.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}),
			client.FieldOwner("kubectl")))
	}
	updateStatus := func(o client.Object, change func()) {
		t.Helper()
		testenv.Eventually(t, "update status of "+o.GetName(), func() error {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			change()
			return c.Client.Status().Update(ctx, o)
		})
	}
	// Created, then the deployment controller gives it revision 1.
	two := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{kubeplexv1alpha1.AppLabel: "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1.0"}}},
			}},
	}
	must(c.Client.Create(ctx, dep, client.FieldOwner("helm")))
	step("rollout 1 started", func() {
		updateAs(controller, dep, func() { setRevision(dep, "1") })
	}, "Rollout of web revision 1 started (registry.example/web:1.0) by helm")

	// The ReplicaSet and its pods, scheduled.
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f", Namespace: "shop",
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "1"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web",
				UID: dep.UID, Controller: new(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: &two, Selector: dep.Spec.Selector, Template: dep.Spec.Template},
	}
	must(c.Client.Create(ctx, rs))
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"web-5d8f-a1b2c", "web-5d8f-d3e4f"} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name,
					UID: rs.UID, Controller: new(true)}}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:1.0"}}},
		}
		pods[name] = p
		proc := "web." + name[len("web-5d8f-"):]
		step("pod "+name+" scheduled", func() { must(c.Client.Create(ctx, p)) }, proc+": Scheduled on node-1")
	}
	a, d := pods["web-5d8f-a1b2c"], pods["web-5d8f-d3e4f"]

	// The kubelet pulls the image (an Event, aggregated when it repeats: once).
	pulled := podEvent(a, "pulled-1", "Pulled", `Successfully pulled image "registry.example/web:1.0" in 1.2s (1.2s including waiting). Image size: 1000 bytes.`)
	step("image pulled", func() { must(c.Client.Create(ctx, pulled)) }, "web.a1b2c: Pulled image registry.example/web:1.0 in 1.2s")
	update(pulled, func() { pulled.Count = 2 })

	// Both start, then turn ready.
	t0 := metav1.NewTime(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	for _, p := range []*corev1.Pod{a, d} {
		proc := "web." + p.Name[len("web-5d8f-"):]
		step(p.Name+" started", func() {
			updateStatus(p, func() { p.Status.ContainerStatuses = []corev1.ContainerStatus{running(t0, 0, false)} })
		}, proc+": Started (registry.example/web:1.0)")
		step(p.Name+" ready", func() {
			updateStatus(p, func() { p.Status.ContainerStatuses = []corev1.ContainerStatus{running(t0, 0, true)} })
		}, proc+": Up (ready)")
	}
	step("rollout 1 progressing", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 2, 2, 1) })
	}, "Rollout of web revision 1 progressing: 2 of 2 updated, 1 available")
	step("rollout 1 complete", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 2, 2, 2) })
	}, "Rollout of web revision 1 complete: 2 of 2 up")

	// Scaled: one line, no rollout lines while the new pod comes (it is not a rollout).
	step("scaled", func() { scale(dep, 3) }, "Scaled web from 2 to 3 by kubectl")
	updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 3, 3, 2) })
	updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 3, 3, 3) })

	// A new image: revision 2.
	// A new image (kubectl set image), then the controller's revision 2.
	updateAs("kubectl-set", dep, func() { dep.Spec.Template.Spec.Containers[0].Image = "registry.example/web:1.1" })
	step("rollout 2 started", func() {
		updateAs(controller, dep, func() { setRevision(dep, "2") })
	}, "Rollout of web revision 2 started (registry.example/web:1.1) by kubectl-set")
	step("rollout 2 progressing", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 4, 1, 3) })
	}, "Rollout of web revision 2 progressing: 1 of 3 updated, 3 available")
	step("rollout 2 complete", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 3, 3, 3) })
	}, "Rollout of web revision 2 complete: 3 of 3 up")

	// A third pod cannot be scheduled (the scheduler says why twice: one line), then
	// is bound, cannot pull its image (the kubelet alternates ErrImagePull and
	// ImagePullBackOff: one line), then runs but never turns ready.
	e := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f-g5h6i", Namespace: "shop", Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.example/web:9"}}},
	}
	must(c.Client.Create(ctx, e))
	unschedulable := func(msg string) {
		updateStatus(e, func() {
			e.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
				Reason: corev1.PodReasonUnschedulable, Message: msg}}
		})
	}
	step("unschedulable", func() {
		unschedulable("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	}, "web.g5h6i: Cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu")
	unschedulable("0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")
	step("bound", func() {
		must(c.Client.SubResource("binding").Create(ctx, e, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: e.Name, Namespace: e.Namespace},
			Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}, client.FieldOwner("default-scheduler")))
	}, "web.g5h6i: Scheduled on node-1")
	waiting := func(reason, msg string) {
		updateStatus(e, func() {
			e.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Image: "registry.example/web:9",
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
		})
	}
	pullErr := `rpc error: code = NotFound desc = failed to pull and unpack image "registry.example/web:9": ` +
		`failed to resolve reference "registry.example/web:9": registry.example/web:9: not found`
	waiting("ContainerCreating", "")
	step("image pull failed", func() { waiting("ErrImagePull", pullErr) },
		`web.g5h6i: Cannot pull image registry.example/web:9 (ErrImagePull): failed to resolve reference "registry.example/web:9": registry.example/web:9: not found`)
	waiting("ImagePullBackOff", `Back-off pulling image "registry.example/web:9": ErrImagePull: `+pullErr)
	waiting("ErrImagePull", pullErr)
	now := metav1.Now()
	step("pulled at last and started", func() {
		updateStatus(e, func() {
			cs := running(now, 0, false)
			cs.Image = "registry.example/web:9"
			e.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		})
	}, "web.g5h6i: Started (registry.example/web:9)")

	// Readiness probes fail: d's while it is ready (twice, one Event), e's three times
	// since it started (one line); then d turns not ready (one line, quoting the probe).
	unhealthy := "Readiness probe failed: HTTP probe failed with statuscode: 503"
	dProbe := podEvent(d, "unhealthy-1", "Unhealthy", unhealthy)
	dProbe.Type = corev1.EventTypeWarning
	must(c.Client.Create(ctx, dProbe))
	update(dProbe, func() { dProbe.Count = 2 })
	eProbe := podEvent(e, "unhealthy-1", "Unhealthy", unhealthy)
	eProbe.Type, eProbe.Count = corev1.EventTypeWarning, 3
	// One informer carries both pods' Unhealthy Events, in order: once e's line is
	// there, d's two are taken too.
	step("never ready", func() { must(c.Client.Create(ctx, eProbe)) },
		"web.g5h6i: Not ready: its readiness probe failed 3 times since it started (HTTP probe failed with statuscode: 503)")
	step("not ready", func() {
		updateStatus(d, func() { d.Status.ContainerStatuses = []corev1.ContainerStatus{running(t0, 0, false)} })
	}, "web.d3e4f: Not ready: its readiness probe fails (HTTP probe failed with statuscode: 503)")
	update(eProbe, func() { eProbe.Count = 7 })
	update(dProbe, func() { dProbe.Count = 5 })

	// a is OOM-killed into a crash loop: the exit and the loop are written, its next
	// restarts and crashes are not.
	t1 := metav1.NewTime(now.Add(40 * time.Second))
	crashes := func(restarts int32, from, to metav1.Time, reason string, code int32) {
		updateStatus(a, func() {
			a.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Image: "registry.example/web:1.0", RestartCount: restarts,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: code, Reason: reason, StartedAt: from, FinishedAt: to, ContainerID: fmt.Sprintf("containerd://%d", restarts)}}}}
		})
	}
	restarts := func(restarts int32, at metav1.Time) {
		updateStatus(a, func() {
			cs := running(at, restarts, true)
			cs.LastTerminationState = a.Status.ContainerStatuses[0].LastTerminationState
			a.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		})
	}
	step("oom and crash loop", func() { crashes(1, now, t1, "OOMKilled", 137) },
		"web.a1b2c: Process killed: out of memory (OOMKilled, status 137) after 40s",
		"web.a1b2c: State changed from up to crashed (restart count 1): in a crash loop, the kubelet restarts it with growing delays (CrashLoopBackOff); restarts are not written until it stays up 10m")
	t2 := metav1.NewTime(t1.Add(10 * time.Second))
	restarts(1, t2)
	t3 := metav1.NewTime(t2.Add(5 * time.Second))
	crashes(2, t2, t3, "Error", 1)
	restarts(2, metav1.NewTime(t3.Add(20*time.Second)))

	// Killed by a failed liveness probe, twice (the second time the kubelet counts it
	// on the same Event); an ordinary stop is not a probe kill.
	kill := podEvent(a, "kill-1", "Killing", "Container web failed liveness probe, will be restarted")
	step("probe kill", func() { must(c.Client.Create(ctx, kill)) }, "web.a1b2c: Killed by the kubelet: failed liveness probe, restarting")
	must(c.Client.Create(ctx, podEvent(d, "stop-1", "Killing", "Stopping container web")))
	update(kill, func() { kill.Count = 2 })
	want = append(want, "web.a1b2c: Killed by the kubelet: failed liveness probe, restarting")
	testenv.Eventually(t, "second probe kill", func() error {
		if n := countText(deployLines(sink), want[len(want)-1]); n != 2 {
			return fmt.Errorf("%d probe kill lines", n)
		}
		return nil
	})

	// d is preempted; a is evicted by the kubelet (an older kubelet: no condition).
	step("preempted", func() {
		updateStatus(d, func() {
			d.Status.Conditions = append(d.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget,
				Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler", LastTransitionTime: t2})
		})
	}, "web.d3e4f: Preempted by a higher-priority pod")
	step("evicted", func() {
		updateStatus(a, func() {
			a.Status.Phase, a.Status.Reason, a.Status.Message = corev1.PodFailed, "Evicted", "The node was low on resource: memory."
		})
	}, "web.a1b2c: Evicted by the kubelet: The node was low on resource: memory.")
	// Deleting a scheduled pod is graceful: the API server marks it, the kubelet
	// (none here) would stop it.
	step("stopping", func() { must(c.Client.Delete(ctx, d)) }, "web.d3e4f: Stopping all processes with SIGTERM (SIGKILL after 30s)")

	// The leader stops; the other manager takes over, lists everything again and
	// writes nothing that was written (a crash loop under way, a pod not ready): the
	// next fact is the first line after the failover.
	if leads(other) {
		t.Fatal("the follower ran the deploy source")
	}
	if err := mgr.Stop(30 * time.Second); err != nil {
		t.Logf("manager stop: %v", err)
	}
	testenv.Until(t, "the other manager leads and watches", func() bool { return leads(other) })
	step("scaled after failover", func() { scale(dep, 4) }, "Scaled web from 3 to 4 by kubectl")
	// a crashes once more: still the same loop.
	crashes(3, metav1.NewTime(t3.Add(20*time.Second)), metav1.NewTime(t3.Add(30*time.Second)), "Error", 1)
	step("e's pod stops", func() { must(c.Client.Delete(ctx, e)) }, "web.g5h6i: Stopping all processes with SIGTERM (SIGKILL after 30s)")

	markersThrough(t, sink, []string{routerURL}, token, "marker-end")
	if got := deployLines(sink); !slices.Equal(got, want) {
		t.Errorf("deploy lines:\n got %q\nwant %q", got, want)
	}
	msgs, _ := sink.snapshot()
	for _, m := range msgs {
		if m.AppName == "kubeplex" && m.ProcID == "deploy" && m.Hostname == "" {
			t.Errorf("deploy line without a host: %q", m.Text)
		}
	}
}

func setRevision(dep *appsv1.Deployment, rev string) {
	if dep.Annotations == nil {
		dep.Annotations = map[string]string{}
	}
	dep.Annotations["deployment.kubernetes.io/revision"] = rev
}

func deployStatus(gen int64, total, updated, available int32) appsv1.DeploymentStatus {
	return appsv1.DeploymentStatus{ObservedGeneration: gen, Replicas: total, UpdatedReplicas: updated,
		ReadyReplicas: available, AvailableReplicas: available}
}

func running(at metav1.Time, restarts int32, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "web", Image: "registry.example/web:1.0", RestartCount: restarts, Ready: ready,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: at}}}
}

func podEvent(p *corev1.Pod, name, reason, msg string) *corev1.Event {
	now := metav1.Now()
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name + "." + name, Namespace: p.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID,
			APIVersion: "v1", FieldPath: "spec.containers{web}"},
		Reason: reason, Message: msg, Type: corev1.EventTypeNormal, Count: 1,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kubelet", Host: "node-1"},
	}
}

func deployLines(s *syslogSink) []string {
	msgs, _ := s.snapshot()
	var out []string
	for _, m := range msgs {
		if m.AppName == "kubeplex" && m.ProcID == "deploy" {
			out = append(out, string(m.Text))
		}
	}
	return out
}

func countText(lines []string, text string) int {
	n := 0
	for _, l := range lines {
		if strings.TrimSpace(l) == text {
			n++
		}
	}
	return n
}
