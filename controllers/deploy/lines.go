// Package deploy is the deploy source: kubeplex[deploy] lines about an app's
// workloads (Deployments, StatefulSets, DaemonSets whose pod template carries the
// app's label), their pods and the kubelet's Events about those pods, written by the
// manager's leader through the platform Poster.
//
// Every line is the difference between two observations of one object (the
// informer's old and new copy), so a fact is written when the API server first shows
// it and never again: resyncs and unchanged updates give no difference, Events that
// the kubelet aggregates (count++) are written once per new occurrence for kills and
// once per Event object otherwise, and a restarted or newly elected manager takes
// what it lists at start as the baseline and writes nothing from it. A fact that
// happens while no leader runs is not written (at most once, as every platform line).
package deploy

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/collector/procname"
)

// Proc is the process of the deploy source's lines.
const Proc = "deploy"

// The annotations the workload controllers keep their revision in.
const (
	deploymentRevision = "deployment.kubernetes.io/revision"
	daemonSetRevision  = "deprecated.daemonset.template.generation"
	podIndexLabel      = "apps.kubernetes.io/pod-index"
)

// workload is what the lines need of a Deployment, StatefulSet or DaemonSet.
type workload struct {
	Kind, Namespace, Name, App string
	Revision                   string
	Images                     []string
	// HasReplicas is false for DaemonSets (one pod per node, no spec.replicas).
	HasReplicas                        bool
	Replicas                           int32 // spec.replicas
	Desired, Total, Updated, Available int32
	Generation, ObservedGeneration     int64
	// Failed is the controller's message when the rollout missed its deadline.
	Failed string
}

func (w *workload) complete() bool {
	return w.ObservedGeneration >= w.Generation && w.Updated == w.Desired && w.Available == w.Desired && w.Total == w.Desired
}

func (w *workload) label() string {
	if w.Kind == "Deployment" {
		return w.Name
	}
	return w.Name + " (" + w.Kind + ")"
}

func images(spec *corev1.PodSpec) []string {
	out := make([]string, 0, len(spec.Containers))
	for _, c := range spec.Containers {
		out = append(out, c.Image)
	}
	return out
}

// workloadOf reads a Deployment, StatefulSet or DaemonSet; ok is false for anything
// else and for workloads whose pods are no app's.
func workloadOf(obj any) (w workload, ok bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		w = workload{Kind: "Deployment", Namespace: o.Namespace, Name: o.Name,
			App: o.Spec.Template.Labels[kubeplexv1alpha1.AppLabel], Revision: o.Annotations[deploymentRevision],
			Images: images(&o.Spec.Template.Spec), HasReplicas: true, Replicas: replicas(o.Spec.Replicas),
			Total: o.Status.Replicas, Updated: o.Status.UpdatedReplicas, Available: o.Status.AvailableReplicas,
			Generation: o.Generation, ObservedGeneration: o.Status.ObservedGeneration}
		w.Desired = w.Replicas
		for _, c := range o.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
				w.Failed = c.Message
			}
		}
	case *appsv1.StatefulSet:
		w = workload{Kind: "StatefulSet", Namespace: o.Namespace, Name: o.Name,
			App: o.Spec.Template.Labels[kubeplexv1alpha1.AppLabel], Revision: o.Status.UpdateRevision,
			Images: images(&o.Spec.Template.Spec), HasReplicas: true, Replicas: replicas(o.Spec.Replicas),
			Total: o.Status.Replicas, Updated: o.Status.UpdatedReplicas, Available: o.Status.AvailableReplicas,
			Generation: o.Generation, ObservedGeneration: o.Status.ObservedGeneration}
		w.Desired = w.Replicas
	case *appsv1.DaemonSet:
		w = workload{Kind: "DaemonSet", Namespace: o.Namespace, Name: o.Name,
			App: o.Spec.Template.Labels[kubeplexv1alpha1.AppLabel], Revision: o.Annotations[daemonSetRevision],
			Images: images(&o.Spec.Template.Spec), Desired: o.Status.DesiredNumberScheduled,
			Total: o.Status.CurrentNumberScheduled, Updated: o.Status.UpdatedNumberScheduled,
			Available: o.Status.NumberAvailable, Generation: o.Generation, ObservedGeneration: o.Status.ObservedGeneration}
	default:
		return w, false
	}
	return w, w.App != ""
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// rollout is what the source remembers of a workload between two observations: the
// revision whose rollout it announced and has not seen complete.
type rollout struct {
	Revision string
	Failed   bool
}

// workloadLines compares two observations of a workload. rolling is the revision
// being rolled out (updated in place).
func workloadLines(o, n *workload, rolling *rollout) []string {
	var out []string
	if n.HasReplicas && o.Replicas != n.Replicas {
		out = append(out, fmt.Sprintf("Scaled %s from %d to %d", n.label(), o.Replicas, n.Replicas))
	}
	if n.Revision != "" && n.Revision != o.Revision {
		*rolling = rollout{Revision: n.Revision}
		out = append(out, fmt.Sprintf("Rollout of %s revision %s started (%s)", n.label(), n.Revision, strings.Join(n.Images, ", ")))
		if !n.complete() {
			return out
		}
	}
	if rolling.Revision == "" || rolling.Revision != n.Revision {
		return out
	}
	switch {
	case n.complete():
		out = append(out, fmt.Sprintf("Rollout of %s revision %s complete: %d of %d up", n.label(), n.Revision, n.Available, n.Desired))
		*rolling = rollout{}
	case n.Failed != "" && !rolling.Failed:
		rolling.Failed = true
		out = append(out, fmt.Sprintf("Rollout of %s revision %s failed: %s", n.label(), n.Revision, n.Failed))
	case o.Updated != n.Updated || o.Available != n.Available || o.Desired != n.Desired:
		out = append(out, fmt.Sprintf("Rollout of %s revision %s progressing: %d of %d updated, %d available",
			n.label(), n.Revision, n.Updated, n.Desired, n.Available))
	}
	return out
}

// processName names a pod's container as the collector does (collector/procname):
// the process-type label or the container name, then the pod's ordinal or the last
// part of its name (web-7d9f8c6b5-x2k4q → web.x2k4q).
func processName(pod *corev1.Pod, container string) string {
	return procname.Env{ProcessType: pod.Labels[kubeplexv1alpha1.ProcessTypeLabel], Container: container,
		PodIndex: pod.Labels[podIndexLabel], PodName: pod.Name}.Name("")
}

// podProcess names the pod as a whole (scheduling, eviction): its first container's
// process.
func podProcess(pod *corev1.Pod) string {
	if len(pod.Spec.Containers) == 0 {
		return processName(pod, "")
	}
	return processName(pod, pod.Spec.Containers[0].Name)
}

// podLines compares two observations of a pod (o nil: created while we watch).
func podLines(o, n *corev1.Pod) []string {
	var out []string
	if o == nil {
		o = &corev1.Pod{}
	}
	proc := podProcess(n)
	if n.Spec.NodeName != "" && o.Spec.NodeName == "" {
		out = append(out, proc+": Scheduled on "+n.Spec.NodeName)
	}
	oldStatus := map[string]*corev1.ContainerStatus{}
	for i := range o.Status.ContainerStatuses {
		oldStatus[o.Status.ContainerStatuses[i].Name] = &o.Status.ContainerStatuses[i]
	}
	for i := range n.Status.ContainerStatuses {
		cs := &n.Status.ContainerStatuses[i]
		out = append(out, containerLines(processName(n, cs.Name), oldStatus[cs.Name], cs)...)
	}
	if c := disruption(n); c != nil && disruption(o) == nil {
		out = append(out, proc+": "+disruptionText(c))
	} else if n.Status.Reason == "Evicted" && o.Status.Reason != "Evicted" && c == nil {
		out = append(out, proc+": Evicted by the kubelet: "+n.Status.Message)
	}
	if n.DeletionTimestamp != nil && o.DeletionTimestamp == nil {
		grace := ""
		if n.DeletionGracePeriodSeconds != nil {
			grace = fmt.Sprintf(" (SIGKILL after %ds)", *n.DeletionGracePeriodSeconds)
		}
		out = append(out, proc+": Stopping all processes with SIGTERM"+grace)
	}
	return out
}

func disruption(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func disruptionText(c *corev1.PodCondition) string {
	msg := ""
	if c.Message != "" {
		msg = ": " + c.Message
	}
	switch c.Reason {
	case "PreemptionByScheduler":
		return "Preempted by a higher-priority pod" + msg
	case "EvictionByEvictionAPI":
		return "Evicted through the eviction API (node drain or disruption budget)" + msg
	case "TerminationByKubelet":
		return "Evicted by the kubelet" + msg
	case "DeletionByTaintManager":
		return "Evicted by a node taint" + msg
	case "DeletionByPodGC":
		return "Removed by the pod garbage collector (node gone)" + msg
	}
	return "Disrupted (" + c.Reason + ")" + msg
}

// containerLines compares two observations of a container (o nil: first seen).
func containerLines(proc string, o, n *corev1.ContainerStatus) []string {
	if o == nil {
		o = &corev1.ContainerStatus{}
	}
	var out []string
	// An end of a run is written once: when it first appears as the current state or,
	// if the kubelet restarted the container before we saw that, as the last state.
	seen := func(t *corev1.ContainerStateTerminated) bool {
		return sameRun(t, o.State.Terminated) || sameRun(t, o.LastTerminationState.Terminated)
	}
	if t := n.LastTerminationState.Terminated; t != nil && !seen(t) {
		out = append(out, proc+": "+exitText(t))
	}
	if t := n.State.Terminated; t != nil && !seen(t) {
		out = append(out, proc+": "+exitText(t))
	}
	if w := n.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" &&
		(o.State.Waiting == nil || o.State.Waiting.Reason != "CrashLoopBackOff") {
		out = append(out, fmt.Sprintf("%s: Crashed (restart count %d); the kubelet waits before starting it again (CrashLoopBackOff)",
			proc, n.RestartCount))
	}
	if r := n.State.Running; r != nil && (o.State.Running == nil || !o.State.Running.StartedAt.Equal(&r.StartedAt)) {
		text := proc + ": Started (" + n.Image
		if n.RestartCount > 0 {
			text += fmt.Sprintf(", restart %d", n.RestartCount)
		}
		out = append(out, text+")")
	}
	switch {
	case n.Ready && !o.Ready:
		out = append(out, proc+": Up (ready)")
	case !n.Ready && o.Ready && n.State.Running != nil && o.State.Running != nil &&
		o.State.Running.StartedAt.Equal(&n.State.Running.StartedAt):
		out = append(out, proc+": Not ready (its readiness probe fails)")
	}
	return out
}

func sameRun(a, b *corev1.ContainerStateTerminated) bool {
	if a == nil || b == nil {
		return false
	}
	if a.ContainerID != "" || b.ContainerID != "" {
		return a.ContainerID == b.ContainerID && a.FinishedAt.Equal(&b.FinishedAt)
	}
	return a.FinishedAt.Equal(&b.FinishedAt) && a.StartedAt.Equal(&b.StartedAt)
}

func exitText(t *corev1.ContainerStateTerminated) string {
	after := ""
	if !t.StartedAt.IsZero() && !t.FinishedAt.IsZero() {
		after = " after " + t.FinishedAt.Sub(t.StartedAt.Time).Round(100*time.Millisecond).String()
	}
	switch t.Reason {
	case "OOMKilled":
		return fmt.Sprintf("Process killed: out of memory (OOMKilled, status %d)%s", t.ExitCode, after)
	case "", "Completed", "Error":
		if t.Signal != 0 {
			return fmt.Sprintf("Process killed by signal %d%s", t.Signal, after)
		}
		if t.Reason == "" {
			return fmt.Sprintf("Process exited with status %d%s", t.ExitCode, after)
		}
		return fmt.Sprintf("Process exited with status %d (%s)%s", t.ExitCode, t.Reason, after)
	}
	return fmt.Sprintf("Process exited with status %d (%s)%s", t.ExitCode, t.Reason, after)
}

// occurrences is how often an Event says its fact happened (the kubelet aggregates
// repeats into one Event, counting; events.k8s.io series count likewise).
func occurrences(e *corev1.Event) int32 {
	n := e.Count
	if e.Series != nil && e.Series.Count > n {
		n = e.Series.Count
	}
	return max(n, 1)
}

// eventLine is the line for a kubelet Event about pod (o nil: a new Event). Pulled
// is written once per Event object (a container's image is pulled, or found, again
// at every restart: the restart is the news, written from the pod's status); a kill
// by a failed probe once per occurrence.
func eventLine(o, n *corev1.Event, pod *corev1.Pod) string {
	container := containerOf(n.InvolvedObject.FieldPath)
	proc := processName(pod, container)
	if container == "" {
		proc = podProcess(pod)
	}
	switch n.Reason {
	case "Pulled":
		if o != nil {
			return ""
		}
		img, rest := quoted(n.Message)
		switch {
		case img == "":
			return ""
		case strings.Contains(n.Message, "already present"):
			return fmt.Sprintf("%s: Image %s already present on %s", proc, img, nodeOf(n))
		default:
			took := ""
			if d, ok := strings.CutPrefix(strings.TrimSpace(rest), "in "); ok {
				took = " in " + strings.Fields(d)[0]
			}
			return fmt.Sprintf("%s: Pulled image %s%s", proc, img, took)
		}
	case "Killing":
		probe := probeOf(n.Message)
		if probe == "" {
			return "" // an ordinary stop: the pod's deletion says it
		}
		if o != nil && occurrences(n) <= occurrences(o) {
			return ""
		}
		times := ""
		if o != nil && occurrences(n)-occurrences(o) > 1 {
			times = fmt.Sprintf(" (%d times)", occurrences(n)-occurrences(o))
		}
		return fmt.Sprintf("%s: Killed by the kubelet: failed %s probe, restarting%s", proc, probe, times)
	}
	return ""
}

// containerOf reads "spec.containers{web}".
func containerOf(fieldPath string) string {
	_, rest, ok := strings.Cut(fieldPath, "{")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "}")
	return name
}

func quoted(s string) (string, string) {
	_, rest, ok := strings.Cut(s, `"`)
	if !ok {
		return "", s
	}
	v, rest, ok := strings.Cut(rest, `"`)
	if !ok {
		return "", s
	}
	return v, rest
}

func probeOf(msg string) string {
	for _, p := range []string{"liveness", "startup", "readiness"} {
		if strings.Contains(msg, "failed "+p+" probe") {
			return p
		}
	}
	return ""
}

func nodeOf(e *corev1.Event) string {
	if e.Source.Host != "" {
		return e.Source.Host
	}
	if e.ReportingInstance != "" {
		return e.ReportingInstance
	}
	return "the node"
}
