//go:build node

package node

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// buildLines: a Job labelled kubeplex.io/build=<app> is a build (docs/sources.md):
// the manager's leader writes kubeplex[build] "Build … started (image)" and "Build …
// succeeded in …" from the Job's status, and the build pod, wrapped by the webhook as
// process type build, sends its output as app[build.<suffix>], ended by the wrapper's
// exit line — all in the app's drains.
func (s *suite) buildLines(t *testing.T) {
	const job, lines = "shop-build-1", 30
	kubectlIn(t, fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {kubeplex.io/build: shop}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {kubeplex.io/app: shop, kubeplex.io/build: shop}
    spec:
      restartPolicy: Never
      containers:
        - name: compile
          image: %[3]s
          imagePullPolicy: Never
          command: ["/worker", "-prefix", "j1", "-lines", "%[4]d", "-every", "5ms", "-exit", "0"]
`, job, shopNS, workerImage, lines), "apply", "-f", "-")
	kubectl(t, "wait", "-n", shopNS, "--for=condition=Complete", "job/"+job, "--timeout=180s")
	pod := onePodDone(t, shopNS, "job-name="+job)
	if pod.Annotations["kubeplex.io/injection"] != "injected" {
		t.Fatalf("build pod %s not injected: %v", pod.Name, pod.Annotations)
	}
	build := func(re string) msg {
		t.Helper()
		return findText(t, s.https, 2*time.Minute, "kubeplex", "build", regexp.MustCompile(re))
	}
	build(`^Build ` + job + ` started \(` + regexp.QuoteMeta(workerImage) + `\)$`)
	build(`^Build ` + job + ` succeeded in \S+$`)
	// The build's own output, as process build.<suffix>, every line in order.
	eventually(t, 2*time.Minute, "every line of the build at the receiver", func() error {
		msgs, _ := s.https.snapshot()
		return checkSequence(procMsgs(msgs, "build."), "j1", lines)
	})
	exit := build(`^Process exited with status 0 after \S+$`)
	if !regexp.MustCompile(`^build\.[a-z0-9]+$`).MatchString(exit.Proc) {
		t.Errorf("exit line from process %q, want build.<suffix>", exit.Proc)
	}
	kubectl(t, "delete", "-n", shopNS, "job/"+job, "--wait=false")
}

// onePodDone returns the one pod matching selector, whatever its phase (a Job's
// finished pod).
func onePodDone(t *testing.T, ns, selector string) corev1.Pod {
	t.Helper()
	sel, err := labelsSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	var pods corev1.PodList
	if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods match %s in %s, want 1", len(pods.Items), selector, ns)
	}
	return pods.Items[0]
}
