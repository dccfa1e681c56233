package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestBuildLines: build Jobs (label kubeplex.io/build: web) started, succeeded and
// failed give kubeplex[build] lines with the duration through a real manager and
// router, each once; a Job without the label gives none. envtest runs no Job
// controller: the test writes the status it would.
func TestBuildLines(t *testing.T) {
	s := newStack(t)
	c, ctx := s.cluster, s.ctx
	r := s.startRouter(t, nil)
	routerURL := r.URL
	s.startManager(t, false, r, "--router-status-interval", "500ms")
	sink := startSyslogSink(t)
	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	for _, o := range []client.Object{app, drainTo("first", sink.addr)} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	token := appToken(t, c, app)
	markersThrough(t, sink, []string{routerURL}, token, "marker-0")

	job := func(name string, labelled bool) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web"}},
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "build", Image: "registry.example/builder:1"}}},
			}}}
		if labelled {
			j.Labels = map[string]string{kubeplexv1alpha1.BuildLabel: "web"}
			j.Spec.Template.Labels[kubeplexv1alpha1.BuildLabel] = "web"
		}
		if err := c.Client.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	setStatus := func(j *batchv1.Job, change func(*batchv1.JobStatus)) {
		t.Helper()
		testenv.Eventually(t, "status of "+j.Name, func() error {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(j), j); err != nil {
				return err
			}
			change(&j.Status)
			return c.Client.Status().Update(ctx, j)
		})
	}
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return new(metav1.NewTime(t0.Add(d))) }
	cond := func(typ batchv1.JobConditionType, reason, msg string, d time.Duration) batchv1.JobCondition {
		return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
			LastProbeTime: *at(d), LastTransitionTime: *at(d)}
	}
	var want []string
	waitFor := func(lines ...string) {
		t.Helper()
		want = append(want, lines...)
		testenv.Eventually(t, "build lines", func() error {
			got := procLines(sink, "build")
			for _, l := range lines {
				if !slices.Contains(got, l) {
					return fmt.Errorf("no %q yet; have %q", l, got)
				}
			}
			return nil
		})
	}

	ok := job("web-build-42", true)
	other := job("not-a-build", false)
	setStatus(other, func(s *batchv1.JobStatus) { s.StartTime, s.Active = at(0), 1 })
	setStatus(ok, func(s *batchv1.JobStatus) { s.StartTime, s.Active = at(0), 1 })
	waitFor("Build web-build-42 started (registry.example/builder:1)")
	setStatus(ok, func(s *batchv1.JobStatus) {
		s.Active, s.Succeeded, s.CompletionTime = 0, 1, at(92*time.Second)
		s.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached", "", 92*time.Second),
			cond(batchv1.JobComplete, "CompletionsReached", "", 92*time.Second)}
	})
	waitFor("Build web-build-42 succeeded in 1m32s")

	bad := job("web-build-43", true)
	setStatus(bad, func(s *batchv1.JobStatus) { s.StartTime, s.Active = at(0), 1 })
	waitFor("Build web-build-43 started (registry.example/builder:1)")
	setStatus(bad, func(s *batchv1.JobStatus) {
		s.Active, s.Failed = 0, 1
		msg := "Job has reached the specified backoff limit"
		s.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "BackoffLimitExceeded", msg, 40*time.Second),
			cond(batchv1.JobFailed, "BackoffLimitExceeded", msg, 40*time.Second)}
	})
	waitFor("Build web-build-43 failed after 40s (BackoffLimitExceeded: Job has reached the specified backoff limit)")

	markersThrough(t, sink, []string{routerURL}, token, "marker-end")
	if got := procLines(sink, "build"); !slices.Equal(got, want) {
		t.Errorf("build lines:\n got %q\nwant %q", got, want)
	}
}

func procLines(s *syslogSink, proc string) []string {
	msgs, _ := s.snapshot()
	var out []string
	for _, m := range msgs {
		if m.AppName == "kubeplex" && m.ProcID == proc {
			out = append(out, string(m.Text))
		}
	}
	return out
}
