//go:build node

package node

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

const (
	workerImage     = "kubeplex-node/worker:1"
	otelWorkerImage = "kubeplex-node/otelworker:1" // test/node/otelworker
)

// TestNode runs the cases in order on one installation: later ones reuse the app,
// the drains and the receivers of earlier ones, as a user's cluster would.
func TestNode(t *testing.T) {
	// Receivers live for the whole run, on the node's address (pods reach it through
	// their gateway). They are started here, in the test's own goroutine.
	ca := newTestCA(t)
	s := &suite{ca: ca, rsys: startRsyslog(t), tlsr: startTLSSyslog(t, ca), https: startHTTPSDrain(t, ca), tokens: map[string]string{},
		reg: startRegistry(t), otel: startOtelCollector(t)}
	if !t.Run("1-helm-install", s.helmInstall) {
		t.Fatal("kubeplex is not installed: the other cases cannot run")
	}
	t.Run("1b-manager-metrics", s.managerMetrics)
	t.Run("1c-servicemonitor", s.serviceMonitor)
	if !t.Run("2-delivery", s.delivery) {
		t.Fatal("no delivery to the drains: the cases that read them cannot run")
	}
	// Right after case 2, while app shop's history is d1's lines.
	t.Run("10-cli-logs", s.cliLogs)
	t.Run("10b-peer-gather", s.peerGather)
	t.Run("11-deploy-lines", s.deployLines)
	t.Run("11b-deploy-failures", s.deployFailures)
	t.Run("12-otlp-drain", s.otlpDrain)
	t.Run("12b-otlp-input", s.otlpInput)
	t.Run("13-build-lines", s.buildLines)
	t.Run("3-process-events", s.processEvents)
	t.Run("3-oom-kill", s.oomKill)
	t.Run("5-drain-status", s.drainStatus)
	t.Run("6-router-restarts", s.routerRestarts)
	t.Run("7-webhook-down", s.webhookDown)
	t.Run("4-cri-tail", s.criTail)
	t.Run("4b-image-command", s.imageCommand)
	t.Run("14-manager-memory", s.managerMemory)
	t.Run("15-drain-owners", s.drainOwners)
	t.Run("9-helm-uninstall", s.helmUninstall)
	t.Run("8-kustomize", s.kustomize)
}

type suite struct {
	ca    *testCA
	reg   *testRegistry
	rsys  *rsyslog
	tlsr  *syslogReceiver
	https *httpsDrain
	otel  *otelCollector // the OpenTelemetry Collector's OTLP receiver
	// drain tokens by receiver
	tokens map[string]string
}

func (s *suite) helmInstall(t *testing.T) {
	out := helm(t, "install", release, filepath.Join(repo, "charts", "kubeplex"), "--namespace", systemNS, "--create-namespace",
		"--set", "image.pullPolicy=Never", "--set", "collector.imagePullPolicy=Never",
		// Drains to the node's address (where the suite's receivers listen) are private
		// and so refused unless allowed.
		"--set", "manager.allowCIDRs={"+nodeIP+"/32}",
		// The suite's registry on the node speaks plain HTTP.
		"--set", "webhook.insecureRegistries={"+s.reg.Host+"}",
		"--wait", "--timeout", "5m")
	t.Logf("helm install:\n%s", out)
	for _, want := range []string{"kubectl port-forward -n " + systemNS + " svc/" + release + "-router 8080:8080", "kubeplex logs web -n NAMESPACE --tail",
		"ClusterRole\n   " + release + "-metrics-reader", "svc/" + release + "-manager-metrics:8443"} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install NOTES lack %q", want)
		}
	}
	ctx := ctxFor(t, time.Minute)
	for name, want := range map[string]int32{release + "-manager": 2, release + "-router": 2} {
		var d appsv1.Deployment
		if err := cl.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: name}, &d); err != nil {
			t.Fatal(err)
		}
		if d.Status.ReadyReplicas != want {
			t.Errorf("deployment %s: %d ready replicas, want %d", name, d.Status.ReadyReplicas, want)
		}
	}
	// One leader: the Lease names one of the manager pods.
	var pods corev1.PodList
	if err := cl.List(ctx, &pods, client.InNamespace(systemNS), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "a manager holds the leader Lease", func() error {
		var l coordinationv1.Lease
		if err := cl.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: "kubeplex-manager.kubeplex.io"}, &l); err != nil {
			return err
		}
		if l.Spec.HolderIdentity == nil {
			return fmt.Errorf("no holder")
		}
		for _, p := range pods.Items {
			if strings.HasPrefix(*l.Spec.HolderIdentity, p.Name+"_") {
				return nil
			}
		}
		return fmt.Errorf("holder %q is none of the manager pods", *l.Spec.HolderIdentity)
	})

	// The webhook is served in-cluster through its Service with the self-managed
	// certificate: a server-side dry run of a pod in an opted-in namespace comes back
	// injected (the API server called the webhook and trusted its caBundle).
	ns := "node-webhook"
	optIn(t, ns)
	logApp(t, ns, "hook", "")
	waitInjecting(t, ns, "hook")
	out = kubectlIn(t, workerPod(ns, "probe", "hook", "-lines", "1"), "create", "--dry-run=server", "-o", "json", "-f", "-")
	var got corev1.Pod
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("dry-run output: %v\n%s", err, out)
	}
	if cmd := got.Spec.Containers[0].Command; len(cmd) < 2 || cmd[0] != "/kubeplex/bin/collector" {
		t.Errorf("worker command not wrapped: %q", cmd)
	}
	kubectl(t, "delete", "namespace", ns, "--wait=false")
}

// optIn creates namespace ns labelled for injection.
func optIn(t *testing.T, ns string) {
	t.Helper()
	kubectlIn(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %s
  labels: {kubeplex.io/inject: enabled}
`, ns), "apply", "-f", "-")
}

// logApp creates a LogApp and waits until it is Ready.
func logApp(t *testing.T, ns, name, mode string) {
	t.Helper()
	spec := "{}"
	if mode != "" {
		spec = "{collectorMode: " + mode + "}"
	}
	kubectlIn(t, fmt.Sprintf(`apiVersion: kubeplex.io/v1alpha1
kind: LogApp
metadata: {name: %s, namespace: %s}
spec: %s
`, name, ns, spec), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "logapp/"+name, "--timeout=120s")
}

// workerPod is a pod manifest of the sample worker for app.
func workerPod(ns, name, app string, args ...string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
  labels: {kubeplex.io/app: %s, kubeplex.io/process-type: %s}
spec:
  restartPolicy: Never
  containers:
    - name: %s
      image: %s
      imagePullPolicy: Never
      command: %s
`, name, ns, app, name, name, workerImage, jsonList(append([]string{"/worker"}, args...)))
}

// workerDeployment is a Deployment manifest of one sample worker (a Deployment of
// its own, named name) for app shop in shopNS; extra is appended to its container.
func workerDeployment(name, extra string, args ...string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata:
      labels: {app: %[1]s, kubeplex.io/app: shop, kubeplex.io/process-type: %[1]s}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: %[1]s
          image: %[3]s
          imagePullPolicy: Never
          command: %[4]s
%[5]s`, name, shopNS, workerImage, jsonList(append([]string{"/worker"}, args...)), extra)
}

func jsonList(s []string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// logDrain creates a LogDrain in shopNS and waits until it is Ready; it returns the
// drain token.
func logDrain(t *testing.T, name, app, url, extra string) string {
	t.Helper()
	ns := shopNS
	kubectlIn(t, fmt.Sprintf(`apiVersion: kubeplex.io/v1alpha1
kind: LogDrain
metadata: {name: %s, namespace: %s}
spec:
  appRef: {name: %s}
  url: %q
%s`, name, ns, app, url, extra), "apply", "-f", "-")
	kubectl(t, "wait", "-n", ns, "--for=condition=Ready", "logdrain/"+name, "--timeout=120s")
	var d kubeplexv1alpha1.LogDrain
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	if d.Status.Token == "" {
		t.Fatalf("drain %s is Ready without a token", name)
	}
	return d.Status.Token
}

const shopNS = "shop"

// receivers names the suite's drains and where they deliver.
func (s *suite) receivers() map[string]receiver {
	return map[string]receiver{"rsyslog": s.rsys, "tls": s.tlsr, "https": s.https}
}

func (s *suite) delivery(t *testing.T) {
	optIn(t, shopNS)
	logApp(t, shopNS, "shop", "")
	kubectlIn(t, fmt.Sprintf(`apiVersion: v1
kind: Secret
# Secrets a drain refers to must opt in to being read for drains (docs/security.md).
metadata: {name: drain-ca, namespace: %s, labels: {kubeplex.io/drain-credentials: "true"}}
stringData:
  ca.crt: %q
`, shopNS, s.ca.PEM), "apply", "-f", "-")
	tlsRef := "  tls: {caSecretRef: {name: drain-ca, key: ca.crt}}\n"
	s.tokens["rsyslog"] = logDrain(t, "rsyslog", "shop", s.rsys.URL(), "")
	s.tokens["tls"] = logDrain(t, "tls", "shop", "syslog+tls://"+s.tlsr.Addr, tlsRef)
	s.tokens["https"] = logDrain(t, "https", "shop", s.https.URL, tlsRef)
	var sec corev1.Secret
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: "https" + kubeplexv1alpha1.DrainSecretSuffix}, &sec); err != nil {
		t.Fatal(err)
	}
	s.https.expect(s.tokens["https"], sec.Data[kubeplexv1alpha1.DrainHMACKeySecretKey])

	const lines = 300
	kubectlIn(t, workerDeployment("web", "", "-prefix", "d1", "-lines", strconv.Itoa(lines), "-every", "5ms"), "apply", "-f", "-")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/web", "--timeout=180s")
	pod := onePod(t, shopNS, "app=web")
	if pod.Annotations["kubeplex.io/injection"] != "injected" {
		t.Fatalf("pod %s not injected: %v", pod.Name, pod.Annotations)
	}
	names := make([]string, 0, len(pod.Spec.InitContainers))
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if !slices.Contains(names, "kubeplex-collector") {
		t.Errorf("pod %s has no collector sidecar: init containers %v", pod.Name, names)
	}
	for name, r := range s.receivers() {
		eventually(t, 2*time.Minute, name+" has every line of d1 in order", func() error {
			msgs, errs := r.snapshot()
			if len(errs) > 0 {
				return fmt.Errorf("receiver errors: %v", errs)
			}
			return checkSequence(msgs, "d1", lines)
		})
		msgs, _ := r.snapshot()
		for _, m := range msgs {
			if m.Token != s.tokens[name] {
				t.Errorf("%s: message %q carries HOSTNAME %q, want the drain token", name, m.Text, m.Token)
				break
			}
		}
	}
}

// onePod returns the one running pod matching selector.
func onePod(t *testing.T, ns, selector string) corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	sel, err := labelsSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		t.Fatal(err)
	}
	var live []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			live = append(live, p)
		}
	}
	if len(live) != 1 {
		t.Fatalf("%d running pods match %s in %s, want 1", len(live), selector, ns)
	}
	return live[0]
}

var seqLine = regexp.MustCompile(`^(\S+) (out|err) (\d+)(?: p+)?$`)

// checkSequence asserts that msgs hold prefix's lines 1..n from app source, each
// once, each on the stream the worker wrote it to, and each stream in order. The
// order between stdout and stderr is not kept closer than the collector's pipe
// polling (two pipes, like any log collector), so it is not asserted. Every third
// line is on stderr (the worker's -stderr-every default).
func checkSequence(msgs []msg, prefix string, n int) error {
	const stderrEvery = 3
	isErr := func(i int) bool { return stderrEvery > 0 && i%stderrEvery == 0 }
	last := map[string]int{}
	got := 0
	for _, m := range msgs {
		sm := seqLine.FindStringSubmatch(m.Text)
		if sm == nil || sm[1] != prefix {
			continue
		}
		if m.Source != "app" {
			return fmt.Errorf("line %q has source %q, want app", m.Text, m.Source)
		}
		i, _ := strconv.Atoi(sm[3])
		want := "out"
		if isErr(i) {
			want = "err"
		}
		if sm[2] != want {
			return fmt.Errorf("line %d came from std%s, the worker wrote it to std%s", i, sm[2], want)
		}
		// The next line due on this stream after the last one seen.
		next := last[want] + 1
		for next <= n && isErr(next) != (want == "err") {
			next++
		}
		if i != next {
			return fmt.Errorf("std%s: line %d arrived where %d was due (%d of %d lines so far)", want, i, next, got, n)
		}
		last[want] = i
		got++
	}
	if got != n {
		return fmt.Errorf("%d of %d lines arrived", got, n)
	}
	return nil
}

func labelsSelector(s string) (labels.Selector, error) { return labels.Parse(s) }
