//go:build node

package node

import (
	"regexp"
	"testing"
	"time"
)

// deployLines: scaling and a rolling restart of a Deployment of the app show in its
// stream as kubeplex[deploy] lines (controllers/deploy, written by the manager's
// leader from what the API server says), as Heroku shows releases and scaling.
func (s *suite) deployLines(t *testing.T) {
	kubectlIn(t, workerDeployment(shopNS, "rel", "shop", 1, "", "-prefix", "rl", "-lines", "-1", "-every", "1s"), "apply", "-f", "-")
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
	deploy(`^Scaled rel from 1 to 2$`)
	kubectl(t, "rollout", "restart", "-n", shopNS, "deployment/rel")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/rel", "--timeout=180s")
	deploy(`^Rollout of rel revision 2 started \(` + regexp.QuoteMeta(workerImage) + `\)$`)
	deploy(`^Rollout of rel revision 2 complete: 2 of 2 up$`)
	// The old pods are stopped as the rollout replaces them.
	deploy(`^rel\.[a-z0-9]+: Stopping all processes with SIGTERM \(SIGKILL after 10s\)$`)
	kubectl(t, "delete", "-n", shopNS, "deployment/rel", "--wait=false")
}
