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
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	// ScaledBy and RolledBy name who last changed spec.replicas and the pod
	// template (the managedFields manager; empty when the object does not say).
	ScaledBy, RolledBy string
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
	if m, ok := obj.(interface {
		GetManagedFields() []metav1.ManagedFieldsEntry
	}); ok {
		w.ScaledBy = owner(m.GetManagedFields(), "f:replicas")
		w.RolledBy = owner(m.GetManagedFields(), "f:template")
	}
	return w, w.App != ""
}

// owner names the field manager that last wrote spec.<field> (field is "f:replicas"
// or "f:template"): the newest managedFields entry owning it that is not a status
// write. A scale through the scale subresource counts (kubectl scale, the HPA); the
// deployment controller's own revision write owns no spec field, so it is never
// taken for the one who rolled out.
func owner(entries []metav1.ManagedFieldsEntry, field string) string {
	var newest *metav1.ManagedFieldsEntry
	for i := range entries {
		e := &entries[i]
		if e.Subresource == "status" || e.Manager == "" || !ownsSpec(e, field) {
			continue
		}
		if newest == nil || (e.Time != nil && (newest.Time == nil || !e.Time.Before(newest.Time))) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return newest.Manager
}

func ownsSpec(e *metav1.ManagedFieldsEntry, field string) bool {
	if e.FieldsV1 == nil {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(e.FieldsV1.GetRawBytes(), &top) != nil {
		return false
	}
	var spec map[string]json.RawMessage
	if json.Unmarshal(top["f:spec"], &spec) != nil {
		return false
	}
	_, ok := spec[field]
	return ok
}

func by(who string) string {
	if who == "" {
		return ""
	}
	return " by " + who
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
	// namespace is the workload's (its entry goes when the namespace is no longer
	// watched).
	namespace string
}

// workloadLines compares two observations of a workload. rolling is the revision
// being rolled out (updated in place).
func workloadLines(o, n *workload, rolling *rollout) []string {
	var out []string
	if n.HasReplicas && o.Replicas != n.Replicas {
		out = append(out, fmt.Sprintf("Scaled %s from %d to %d%s", n.label(), o.Replicas, n.Replicas, by(n.ScaledBy)))
	}
	if n.Revision != "" && n.Revision != o.Revision {
		*rolling = rollout{Revision: n.Revision, namespace: rolling.namespace}
		out = append(out, fmt.Sprintf("Rollout of %s revision %s started (%s)%s",
			n.label(), n.Revision, strings.Join(n.Images, ", "), by(n.RolledBy)))
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
		*rolling = rollout{namespace: rolling.namespace}
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

// StayUp is how long a container must run after a crash loop before the loop counts
// as over: the kubelet resets a container's restart back-off after a run of 10
// minutes.
const StayUp = 10 * time.Minute

// neverReadyFails is how many failed readiness probes in one run of a container that
// has not been ready yet make a "Not ready" line: one or two are the usual price of a
// slow start, not news.
const neverReadyFails = 3

// probeFresh is how recent the last readiness-probe failure must be to be quoted as the
// reason when a container turns not ready.
const probeFresh = 5 * time.Minute

// memory is what the source remembers of one pod between two observations (in the
// leader's memory only: a new leader starts from its baseline, see podBaseline).
type memory struct {
	containers map[string]*containerMemory
}

func (m *memory) of(container string) *containerMemory {
	if m.containers == nil {
		m.containers = map[string]*containerMemory{}
	}
	c := m.containers[container]
	if c == nil {
		c = &containerMemory{}
		m.containers[container] = c
	}
	return c
}

// containerMemory is one container's part of memory.
type containerMemory struct {
	// Loop is set while the container is in a crash loop whose start was written: its
	// exits, restarts and readiness flips are not written until it stays up (StayUp)
	// or a run lasts StayUp.
	Loop bool
	// Run is the start of the run the fields below are about.
	Run metav1.Time
	// NotReady is set once this run's readiness failure was written; it is cleared
	// when the container turns ready or starts again.
	NotReady bool
	// Fails counts the readiness-probe failures (kubelet Unhealthy Events) seen in this
	// run while the container was not ready.
	Fails int32
	// Probe is the kubelet's last readiness-probe failure and when it was seen.
	Probe   string
	ProbeAt time.Time
	// up is armed while a container in a crash loop runs: when it fires the loop is
	// over (the Source's timer).
	up *time.Timer
}

// newRun resets what is about one run when the container runs a new one.
func (m *containerMemory) newRun(cs *corev1.ContainerStatus) {
	if r := cs.State.Running; r != nil && !r.StartedAt.Equal(&m.Run) {
		m.Run, m.NotReady, m.Fails = r.StartedAt, false, 0
	}
}

// podBaseline records what a pod listed at start already shows, so that a new leader
// does not write again what the old one wrote: a crash loop under way (waiting in
// CrashLoopBackOff, or running less than StayUp since its last crash) and a
// container already not ready. It returns the containers whose loop may end.
func podBaseline(p *corev1.Pod, mem *memory, now time.Time) (watchUp []string) {
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		m := mem.of(cs.Name)
		m.newRun(cs)
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff":
			m.Loop = true
		case cs.State.Running != nil && cs.LastTerminationState.Terminated != nil && now.Sub(cs.State.Running.StartedAt.Time) < StayUp:
			m.Loop = true
			watchUp = append(watchUp, cs.Name)
		}
		if cs.State.Running != nil && !cs.Ready {
			m.NotReady = true
		}
	}
	return watchUp
}

// podLines compares two observations of a pod (o nil: created while we watch). It
// updates mem and returns, besides the lines, the containers in a crash loop that
// started a new run (the caller checks StayUp later whether the loop is over).
func podLines(o, n *corev1.Pod, mem *memory, now time.Time) (out, watchUp []string) {
	if o == nil {
		o = &corev1.Pod{}
	}
	proc := podProcess(n)
	if c := unschedulable(n); c != nil && unschedulable(o) == nil && n.Spec.NodeName == "" {
		out = append(out, proc+": Cannot be scheduled: "+schedulerMessage(c.Message))
	}
	if n.Spec.NodeName != "" && o.Spec.NodeName == "" {
		out = append(out, proc+": Scheduled on "+n.Spec.NodeName)
	}
	oldStatus := map[string]*corev1.ContainerStatus{}
	for i := range o.Status.ContainerStatuses {
		oldStatus[o.Status.ContainerStatuses[i].Name] = &o.Status.ContainerStatuses[i]
	}
	for i := range n.Status.ContainerStatuses {
		cs := &n.Status.ContainerStatuses[i]
		lines, up := containerLines(processName(n, cs.Name), oldStatus[cs.Name], cs, mem.of(cs.Name), now)
		out = append(out, lines...)
		if up {
			watchUp = append(watchUp, cs.Name)
		}
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
	return out, watchUp
}

// unschedulable is the scheduler's PodScheduled=False condition (reason
// Unschedulable). The scheduler writes the same message into its FailedScheduling
// Event; the condition is the pod's own state, so its transition is exact, needs no
// Event watch, and a new leader's baseline holds it.
func unschedulable(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c
		}
	}
	return nil
}

// schedulerMessage shortens the scheduler's message: the nodes' reasons, without
// the preemption attempt's (which repeats them) and the final period.
func schedulerMessage(msg string) string {
	msg, _, _ = strings.Cut(msg, " preemption:")
	return shorten(strings.TrimSuffix(strings.TrimSpace(msg), "."))
}

// shorten keeps a message to one line of at most 240 bytes (cut at a rune).
func shorten(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) <= 240 {
		return msg
	}
	cut := 240
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
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

// containerLines compares two observations of a container (o nil: first seen) and
// updates its memory m. up is true when a container in a crash loop started a new run.
func containerLines(proc string, o, n *corev1.ContainerStatus, m *containerMemory, now time.Time) (out []string, up bool) {
	if o == nil {
		o = &corev1.ContainerStatus{}
	}
	m.newRun(n)
	out = exitLines(proc, o, n, m)
	if w := n.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" && !m.Loop {
		m.Loop = true
		out = append(out, fmt.Sprintf("%s: State changed from up to crashed (restart count %d): in a crash loop, "+
			"the kubelet restarts it with growing delays (CrashLoopBackOff); restarts are not written until it stays up %s",
			proc, n.RestartCount, shortDuration(StayUp)))
	}
	if w := n.State.Waiting; w != nil && pullFailure(w.Reason) && (o.State.Waiting == nil || !pullFailure(o.State.Waiting.Reason)) {
		out = append(out, proc+": "+pullText(n.Image, w))
	}
	if r := n.State.Running; r != nil && (o.State.Running == nil || !o.State.Running.StartedAt.Equal(&r.StartedAt)) {
		if m.Loop {
			up = true
		} else {
			text := proc + ": Started (" + n.Image
			if n.RestartCount > 0 {
				text += fmt.Sprintf(", restart %d", n.RestartCount)
			}
			out = append(out, text+")")
		}
	}
	if text := readyLine(proc, o, n, m, now); text != "" {
		out = append(out, text)
	}
	return out, up
}

// exitLines are the ends of runs first seen in n. An end is written once: when it
// first appears as the current state or, if the kubelet restarted the container
// before we saw that, as the last state; in a crash loop not at all.
func exitLines(proc string, o, n *corev1.ContainerStatus, m *containerMemory) []string {
	var out []string
	seen := func(t *corev1.ContainerStateTerminated) bool {
		return sameRun(t, o.State.Terminated) || sameRun(t, o.LastTerminationState.Terminated)
	}
	for _, t := range []*corev1.ContainerStateTerminated{n.LastTerminationState.Terminated, n.State.Terminated} {
		if t == nil || seen(t) {
			continue
		}
		if m.Loop {
			if t.FinishedAt.Sub(t.StartedAt.Time) < StayUp {
				continue // one more turn of the loop already written
			}
			m.Loop = false // it ran long enough for the kubelet to reset its back-off
		}
		out = append(out, proc+": "+exitText(t))
	}
	return out
}

// readyLine is the turn to ready or to not ready (within one run), if any.
func readyLine(proc string, o, n *corev1.ContainerStatus, m *containerMemory, now time.Time) string {
	switch {
	case n.Ready && !o.Ready:
		m.NotReady, m.Fails = false, 0
		if !m.Loop {
			return proc + ": Up (ready)"
		}
	case !n.Ready && o.Ready && n.State.Running != nil && o.State.Running != nil &&
		o.State.Running.StartedAt.Equal(&n.State.Running.StartedAt) && !m.Loop && !m.NotReady:
		m.NotReady = true
		text := proc + ": Not ready: its readiness probe fails"
		if m.Probe != "" && now.Sub(m.ProbeAt) < probeFresh {
			text += " (" + m.Probe + ")"
		}
		return text
	}
	return ""
}

// upAgain is the line when a container in a crash loop has run StayUp since its
// latest start; "" when it is not in a loop or runs another run than started.
func upAgain(proc string, cs *corev1.ContainerStatus, m *containerMemory, started metav1.Time) string {
	if !m.Loop || cs == nil || cs.State.Running == nil || !cs.State.Running.StartedAt.Equal(&started) {
		return ""
	}
	m.Loop = false
	return fmt.Sprintf("%s: State changed from crashed to up: running %s since restart %d", proc, shortDuration(StayUp), cs.RestartCount)
}

// readinessLine takes one more readiness-probe failure (a kubelet Unhealthy Event,
// fails new occurrences, message without the "Readiness probe failed: " prefix). The
// container's turn to not ready is written from its status (containerLines, quoting
// this message); a container that has not been ready in this run is written once,
// after neverReadyFails failures.
func readinessLine(proc string, cs *corev1.ContainerStatus, m *containerMemory, msg string, fails int32, now time.Time) string {
	m.Probe, m.ProbeAt = msg, now
	if cs == nil || cs.State.Running == nil || cs.Ready || m.Loop {
		return ""
	}
	m.newRun(cs)
	if m.NotReady {
		return ""
	}
	m.Fails += fails
	if m.Fails < neverReadyFails {
		return ""
	}
	m.NotReady = true
	return fmt.Sprintf("%s: Not ready: its readiness probe failed %d times since it started (%s)", proc, m.Fails, msg)
}

// probeFailure reads a kubelet Unhealthy Event's message: the probe ("Readiness",
// "Liveness", "Startup") and what failed.
func probeFailure(msg string) (probe, detail string) {
	msg = strings.TrimPrefix(msg, "(combined from similar events): ")
	probe, rest, ok := strings.Cut(msg, " probe ")
	if !ok {
		return "", ""
	}
	_, detail, _ = strings.Cut(rest, ": ") // "failed: …" or "errored: …"
	return probe, shorten(detail)
}

// pullFailure is a container waiting because its image cannot be had. The kubelet
// alternates ErrImagePull and ImagePullBackOff while it retries: one line for the
// whole spell.
func pullFailure(reason string) bool {
	switch reason {
	case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "RegistryUnavailable", "ErrImageInspect":
		return true
	}
	return false
}

func pullText(image string, w *corev1.ContainerStateWaiting) string {
	if w.Reason == "ErrImageNeverPull" {
		return fmt.Sprintf("Cannot start: image %s is not on the node and its pull policy is Never (ErrImageNeverPull)", image)
	}
	msg := w.Message
	// The kubelet's and the runtime's wrappers say again what the line says.
	msg = strings.TrimPrefix(msg, fmt.Sprintf("Back-off pulling image %q: ", image))
	msg = strings.TrimPrefix(msg, fmt.Sprintf("Back-off pulling image %q", image))
	msg = strings.TrimPrefix(msg, "ErrImagePull: ")
	if _, rest, ok := strings.Cut(msg, " desc = "); ok && strings.HasPrefix(msg, "rpc error: code = ") {
		msg = rest
	}
	msg = strings.TrimPrefix(msg, fmt.Sprintf("failed to pull and unpack image %q: ", image))
	msg = strings.TrimPrefix(msg, fmt.Sprintf("failed to pull image %q: ", image))
	text := fmt.Sprintf("Cannot pull image %s (%s)", image, w.Reason)
	if msg = shorten(msg); msg != "" {
		text += ": " + msg
	}
	return text
}

// shortDuration writes 10m0s as 10m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
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
