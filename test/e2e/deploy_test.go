package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestDeployLines plays a Deployment's life on a real API server (envtest runs no
// controllers and no kubelet, so the test writes what the deployment controller, the
// scheduler and the kubelet would: the revision annotation, status, ReplicaSet, pods,
// container states and Events) and checks that a real manager writes the expected
// kubeplex[deploy] lines through a real router, in order and each once; then it
// restarts the manager and checks that nothing already written comes again.
func TestDeployLines(t *testing.T) {
	c := startCluster(t)
	ctx := contextFor(t, 5*time.Minute)
	for _, ns := range []string{systemNS, "shop"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	port := testenv.FreePort(t)
	admin := testenv.FreeAddr(t)
	routerURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	start(t, "router", "--http-addr", fmt.Sprintf("127.0.0.1:%d", port), "--admin-addr", admin,
		"--routes-secret", systemNS+"/"+routesName, "--kubeconfig", c.routerKubeconfig(t), "--allow-cidrs", "127.0.0.0/8")
	managerArgs := []string{"--kubeconfig", c.kubeconfig, "--namespace", systemNS,
		"--routes-secret", routesName, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--leader-elect=true", "--webhook-port", "0", "--allow-cidrs", "127.0.0.0/8",
		"--router-url", routerURL + "/logs", "--router-status-urls", "http://" + admin + "/status", "--router-status-interval", "500ms"}
	mgr := start(t, "manager", managerArgs...)
	sink := startSyslogSink(t)

	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	drain := drainTo("first", sink.addr)
	for _, o := range []client.Object{app, drain} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	token := appToken(t, c, app)
	drainReady(t, c, drain)
	markersThrough(t, sink, []string{routerURL}, token, "marker-0")

	var want []string
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
	update := func(o client.Object, change func()) {
		t.Helper()
		testenv.Eventually(t, "update "+o.GetName(), func() error {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
				return err
			}
			change()
			return c.Client.Update(ctx, o)
		})
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
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
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
	must(c.Client.Create(ctx, dep))
	step("rollout 1 started", func() {
		update(dep, func() { setRevision(dep, "1") })
	}, "Rollout of web revision 1 started (registry.example/web:1.0)")

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
			updateStatus(p, func() { p.Status.ContainerStatuses = []corev1.ContainerStatus{running("web", t0, 0, false)} })
		}, proc+": Started (registry.example/web:1.0)")
		step(p.Name+" ready", func() {
			updateStatus(p, func() { p.Status.ContainerStatuses = []corev1.ContainerStatus{running("web", t0, 0, true)} })
		}, proc+": Up (ready)")
	}
	step("rollout 1 progressing", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 2, 2, 1) })
	}, "Rollout of web revision 1 progressing: 2 of 2 updated, 1 available")
	step("rollout 1 complete", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 2, 2, 2) })
	}, "Rollout of web revision 1 complete: 2 of 2 up")

	// Scaled: one line, no rollout lines while the new pod comes (it is not a rollout).
	step("scaled", func() {
		update(dep, func() { dep.Spec.Replicas = new(int32(3)) })
	}, "Scaled web from 2 to 3")
	updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 3, 3, 2) })
	updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 3, 3, 3) })

	// A new image: revision 2.
	step("rollout 2 started", func() {
		update(dep, func() {
			dep.Spec.Template.Spec.Containers[0].Image = "registry.example/web:1.1"
			setRevision(dep, "2")
		})
	}, "Rollout of web revision 2 started (registry.example/web:1.1)")
	step("rollout 2 progressing", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 4, 1, 3) })
	}, "Rollout of web revision 2 progressing: 1 of 3 updated, 3 available")
	step("rollout 2 complete", func() {
		updateStatus(dep, func() { dep.Status = deployStatus(dep.Generation, 3, 3, 3) })
	}, "Rollout of web revision 2 complete: 3 of 3 up")

	// a is OOM-killed and crash-loops, then runs again.
	t1 := metav1.NewTime(t0.Add(40 * time.Second))
	step("oom and crash loop", func() {
		updateStatus(a, func() {
			cs := corev1.ContainerStatus{Name: "web", Image: "registry.example/web:1.0", RestartCount: 1,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 137, Reason: "OOMKilled", StartedAt: t0, FinishedAt: t1, ContainerID: "containerd://1"}}}
			a.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		})
	}, "web.a1b2c: Process killed: out of memory (OOMKilled, status 137) after 40s",
		"web.a1b2c: Crashed (restart count 1); the kubelet waits before starting it again (CrashLoopBackOff)")
	t2 := metav1.NewTime(t1.Add(10 * time.Second))
	step("restarted", func() {
		updateStatus(a, func() {
			cs := running("web", t2, 1, false)
			cs.LastTerminationState = a.Status.ContainerStatuses[0].LastTerminationState
			a.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		})
	}, "web.a1b2c: Started (registry.example/web:1.0, restart 1)")

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

	// A manager restart (a new leader) lists everything again and writes nothing it
	// has written: the next fact is the first line after the restart.
	if err := mgr.Stop(30 * time.Second); err != nil {
		t.Logf("manager stop: %v", err)
	}
	mgr = start(t, "manager", managerArgs...)
	// A change made before the new leader watches is part of its baseline, not news.
	testenv.Until(t, "the new manager leads and watches", func() bool {
		return strings.Contains(mgr.Out.String(), `"msg":"Starting workers","controller":"deploylines"`)
	})
	step("scaled after restart", func() {
		update(dep, func() { dep.Spec.Replicas = new(int32(4)) })
	}, "Scaled web from 3 to 4")

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

func running(name string, at metav1.Time, restarts int32, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Image: "registry.example/web:1.0", RestartCount: restarts, Ready: ready,
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
