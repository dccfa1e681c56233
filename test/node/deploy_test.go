//go:build node

package node

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// deployLines: scaling and a rolling restart of a Deployment of the app show in its
// stream as kubeplex[deploy] lines (controllers/deploy, written by the manager's
// leader from what the API server says), as Heroku shows releases and scaling.
func (s *suite) deployLines(t *testing.T) {
	kubectlIn(t, workerDeployment("rel", "", "-prefix", "rl", "-lines", "-1", "-every", "1s"), "apply", "-f", "-")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/rel", "--timeout=180s")
	deploy := func(re string) {
		t.Helper()
		findText(t, s.https, 2*time.Minute, "kubeplex", "deploy", regexp.MustCompile(re))
	}
	// The pod's own life, named as the collector names the process.
	deploy(`^rel\.[a-z0-9]+: Scheduled on \S+$`)
	// The image as the kubelet reports it (containerd may name it in full).
	deploy(`^rel\.[a-z0-9]+: Started \(\S*` + regexp.QuoteMeta(workerImage) + `[,)]`)
	deploy(`^rel\.[a-z0-9]+: Up \(ready\)$`)

	kubectl(t, "scale", "-n", shopNS, "deployment/rel", "--replicas=2")
	// With who did it, as the API server records it (kubectl 1.37 scales as "kubectl").
	deploy(`^Scaled rel from 1 to 2 by kubectl\S*$`)
	kubectl(t, "rollout", "restart", "-n", shopNS, "deployment/rel")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/rel", "--timeout=180s")
	deploy(`^Rollout of rel revision 2 started \(` + regexp.QuoteMeta(workerImage) + `\) by kubectl\S*$`)
	deploy(`^Rollout of rel revision 2 complete: 2 of 2 up$`)
	// The old pods are stopped as the rollout replaces them.
	deploy(`^rel\.[a-z0-9]+: Stopping all processes with SIGTERM \(SIGKILL after 10s\)$`)
	kubectl(t, "delete", "-n", shopNS, "deployment/rel", "--wait=false")
}

// deployFailures: a pod the scheduler cannot place (it asks for 1000 CPUs) and a
// container whose image is not on the node with pull policy Never each give one
// kubeplex[deploy] line, with the scheduler's and the kubelet's reason, while the
// scheduler and the kubelet keep retrying.
func (s *suite) deployFailures(t *testing.T) {
	kubectlIn(t, workerDeployment("huge", `          resources: {requests: {cpu: "1000"}}
`, "-prefix", "hg", "-lines", "-1", "-every", "1s"), "apply", "-f", "-")
	missing := "example.invalid/kubeplex-missing:1"
	kubectlIn(t, strings.Replace(workerDeployment("nopull", "", "-prefix", "np", "-lines", "-1", "-every", "1s"),
		"image: "+workerImage, "image: "+missing, 1), "apply", "-f", "-")
	deploy := func(re string) {
		t.Helper()
		findText(t, s.https, 2*time.Minute, "kubeplex", "deploy", regexp.MustCompile(re))
	}
	deploy(`^huge\.[a-z0-9]+: Cannot be scheduled: 0/1 nodes are available: 1 Insufficient cpu$`)
	deploy(`^nopull\.[a-z0-9]+: Scheduled on \S+$`)
	deploy(`^nopull\.[a-z0-9]+: Cannot start: image ` + regexp.QuoteMeta(missing) +
		` is not on the node and its pull policy is Never \(ErrImageNeverPull\)$`)
	// Both keep failing: the scheduler retries, the kubelet resyncs; still one line each.
	kubectl(t, "delete", "-n", shopNS, "deployment/huge", "deployment/nopull", "--wait=true", "--timeout=120s")
	deploy(`^nopull\.[a-z0-9]+: Stopping all processes with SIGTERM`)
	for _, re := range []string{`^huge\.[a-z0-9]+: Cannot be scheduled: `, `^nopull\.[a-z0-9]+: Cannot start: image `} {
		msgs, _ := s.https.snapshot()
		n := 0
		for _, m := range msgs {
			if m.Source == "kubeplex" && m.Proc == "deploy" && regexp.MustCompile(re).MatchString(m.Text) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines matching %s, want 1", n, re)
		}
	}
}
