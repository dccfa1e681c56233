//go:build node

package node

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// findText waits until some message of r from source and a process starting with
// procPrefix matches re, and returns it.
func findText(t *testing.T, r receiver, timeout time.Duration, source, procPrefix string, re *regexp.Regexp) msg {
	t.Helper()
	var found msg
	eventually(t, timeout, fmt.Sprintf("a %s message of %s* matching %s", source, procPrefix, re), func() error {
		msgs, _ := r.snapshot()
		for _, m := range msgs {
			if m.Source == source && strings.HasPrefix(m.Proc, procPrefix) && re.MatchString(m.Text) {
				found = m
				return nil
			}
		}
		var near []string
		for _, m := range msgs {
			if strings.HasPrefix(m.Proc, procPrefix) {
				near = append(near, m.Source+" "+m.Text)
			}
		}
		return fmt.Errorf("messages of %s*: %q", procPrefix, near[max(0, len(near)-8):])
	})
	return found
}

// processEvents: start, exit with its code, restart with its count.
func (s *suite) processEvents(t *testing.T) {
	kubectlIn(t, workerDeployment("crash", "", "-prefix", "c1", "-lines", "2", "-exit", "3"), "apply", "-f", "-")
	findText(t, s.https, 2*time.Minute, "kubeplex", "crash.", regexp.MustCompile("^Starting process with command `/worker -prefix c1 -lines 2 -exit 3` \\(pid \\d+\\)$"))
	findText(t, s.https, 2*time.Minute, "kubeplex", "crash.", regexp.MustCompile(`^Process exited with status 3 after \S+$`))
	// The kubelet restarts the container after a 10 s back-off; the wrapper knows
	// it is a restart only from the state it kept in the pod's shared volume.
	findText(t, s.https, 3*time.Minute, "kubeplex", "crash.", regexp.MustCompile(`^Process restarted \(start 2\); the previous run process exited with status 3`))
	kubectl(t, "delete", "-n", shopNS, "deployment/crash", "--wait=false")
}

// oomKill: a memory-limited worker killed by the OOM killer is reported as such.
func (s *suite) oomKill(t *testing.T) {
	kubectlIn(t, workerDeployment("oom", `          resources: {limits: {memory: 48Mi}}
`, "-prefix", "o1", "-lines", "1", "-oom"), "apply", "-f", "-")
	findText(t, s.https, 3*time.Minute, "kubeplex", "oom.", regexp.MustCompile(`^Process killed by SIGKILL after \S+ \(out of memory: the container's OOM killer fired\)$`))
	kubectl(t, "delete", "-n", shopNS, "deployment/oom", "--wait=false")
}

func getDrain(t *testing.T, name string) kubeplexv1alpha1.LogDrain {
	t.Helper()
	var d kubeplexv1alpha1.LogDrain
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: name}, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func condition(d kubeplexv1alpha1.LogDrain, typ string) string {
	c := meta.FindStatusCondition(d.Status.Conditions, typ)
	if c == nil {
		return "absent"
	}
	return fmt.Sprintf("%s (%s: %s)", c.Status, c.Reason, c.Message)
}

// drainStatus: Ready, Delivering, delivered > 0; a stopped rsyslog flips Delivering
// to False within 60 s, and back when it returns.
func (s *suite) drainStatus(t *testing.T) {
	for name := range s.receivers() {
		eventually(t, 90*time.Second, name+" Ready, Delivering, delivered > 0", func() error {
			d := getDrain(t, name)
			if !meta.IsStatusConditionTrue(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition) ||
				!meta.IsStatusConditionTrue(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition) || d.Status.Delivered == 0 {
				return fmt.Errorf("Ready %s, Delivering %s, delivered %d", condition(d, "Ready"), condition(d, "Delivering"), d.Status.Delivered)
			}
			return nil
		})
	}
	out := kubectl(t, "get", "logdrains", "-n", shopNS)
	t.Logf("kubectl get logdrains:\n%s", out)
	for _, col := range []string{"READY", "DELIVERING"} {
		if v := column(out, "rsyslog", col); v != "True" {
			t.Errorf("kubectl get logdrains shows %s %q for rsyslog, want True:\n%s", col, v, out)
		}
	}

	// A steady writer so there is something to fail to deliver.
	kubectlIn(t, workerDeployment("steady", "", "-prefix", "s1", "-lines", "-1", "-every", "100ms"), "apply", "-f", "-")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/steady", "--timeout=180s")
	s.rsys.stop()
	stopped := time.Now()
	eventually(t, 60*time.Second, "rsyslog drain Delivering=False after rsyslog stopped", func() error {
		d := getDrain(t, "rsyslog")
		c := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason == "" {
			return fmt.Errorf("Delivering %s", condition(d, "Delivering"))
		}
		return nil
	})
	t.Logf("Delivering=False %s after rsyslog stopped (measured under load)", time.Since(stopped).Round(time.Second))
	// A burst larger than the routers' drain queues (1024 each) while rsyslog is down:
	// the queues drop their oldest, and the routers must account for every drop.
	kubectlIn(t, workerDeployment("burst", "", "-prefix", "b1", "-lines", "4000", "-every", "0", "-stderr-every", "0"), "apply", "-f", "-")
	findText(t, s.https, 2*time.Minute, "app", "burst.", regexp.MustCompile(`^b1 done$`))
	s.rsys.start()
	eventually(t, 90*time.Second, "rsyslog drain Delivering=True after rsyslog came back", func() error {
		d := getDrain(t, "rsyslog")
		if !meta.IsStatusConditionTrue(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition) {
			return fmt.Errorf("Delivering %s", condition(d, "Delivering"))
		}
		return nil
	})
	// The L10 count in the stream, in LogDrain status and in the routers' metrics
	// agree, and the lines missing at rsyslog are at least that many (what rsyslog's
	// socket held when it was killed is beyond what TCP lets a sender see).
	eventually(t, 2*time.Minute, "L10 in the stream = status.dropped = router metrics", func() error {
		msgs, _ := s.rsys.snapshot()
		_, _, _, announced, _ := lossAccount(msgs, "b1")
		d := getDrain(t, "rsyslog")
		metric, err := routerMetricSum(t, "kubeplex_router_drain_messages_dropped_total", `drain="shop/rsyslog"`)
		if err != nil {
			return err
		}
		if announced == 0 || int64(announced) != d.Status.Dropped || int64(announced) != metric {
			return fmt.Errorf("announced in the stream %d, status.dropped %d, router metrics %d", announced, d.Status.Dropped, metric)
		}
		// b1 wrote 1..4000; drop-oldest may have taken its first lines, which the
		// first..last span of lossAccount would not count.
		firstB, _, missingB, _, _ := lossAccount(msgs, "b1")
		if firstB > 1 {
			missingB += firstB - 1
		} else if firstB < 0 {
			missingB = 4000
		}
		_, _, missingS, _, _ := lossAccount(msgs, "s1")
		// The other messages a queue can also drop (process events, kubeplex[deploy]
		// lines, "b1 done"): those the HTTPS receiver, up the whole time, has and
		// rsyslog lacks.
		httpsMsgs, _ := s.https.snapshot()
		missingO := missingOthers(httpsMsgs, msgs, "b1", "s1")
		// Every b1 line was written while rsyslog was down, so a missing one can only
		// be a dropped one: all must be announced. The announced count may exceed the
		// numbered lines missing by the other messages missing; s1 lines may also be
		// missing unannounced, lost in rsyslog's socket when it was killed (beyond what
		// TCP tells a sender).
		if missingB > announced || announced > missingB+missingS+missingO {
			return fmt.Errorf("announced %d, missing b1 %d + s1 %d + others %d", announced, missingB, missingS, missingO)
		}
		t.Logf("rsyslog drain: %d dropped (stream, status, metrics agree), %d lines missing", announced, missingB+missingS)
		return nil
	})
	kubectl(t, "delete", "-n", shopNS, "deployment/burst", "deployment/steady", "--wait=false")
}

// routerMetricSum adds up a counter over every router pod, scraped from each pod's
// metrics port (the pods of this node, reached from the host).
func routerMetricSum(t *testing.T, name, label string) (int64, error) {
	var pods corev1.PodList
	if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(systemNS), client.MatchingLabels{"app.kubernetes.io/component": "router"}); err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		port := int32(0)
		for _, c := range p.Spec.Containers[0].Ports {
			if c.Name == "admin" || c.Name == "metrics" || (port == 0 && c.Name == "http") {
				port = c.ContainerPort
			}
		}
		resp, err := http.Get(fmt.Sprintf("http://%s:%d/metrics", p.Status.PodIP, port))
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // read fully above
		if err != nil {
			return 0, err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, name+"{") && strings.Contains(l, label) {
				f := strings.Fields(l)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					return 0, fmt.Errorf("metric line %q: %w", l, err)
				}
				sum += int64(v)
			}
		}
	}
	return sum, nil
}

// missingOthers counts the messages of all that got lacks, other than the numbered
// lines of prefixes and loss notices (as a multiset of source, process and text).
func missingOthers(all, got []msg, prefixes ...string) int {
	key := func(m msg) (string, bool) {
		if sm := steadyN.FindStringSubmatch(m.Text); sm != nil && slices.Contains(prefixes, sm[1]) {
			return "", false
		}
		if m.Source == "kubeplex" && l10.MatchString(m.Text) {
			return "", false
		}
		return m.Source + "\x00" + m.Proc + "\x00" + m.Text, true
	}
	have := map[string]int{}
	for _, m := range got {
		if k, ok := key(m); ok {
			have[k]++
		}
	}
	n := 0
	for _, m := range all {
		if k, ok := key(m); ok {
			if have[k] > 0 {
				have[k]--
			} else {
				n++
			}
		}
	}
	return n
}

var (
	l10     = regexp.MustCompile(`^Error L1[023]\b.*?: (\d+) messages (dropped|lost)`)
	steadyN = regexp.MustCompile(`^(\S+) (?:out|err) (\d+)$`)
)

// lossAccount checks prefix's numbered lines at r: every number from the first seen
// to the last is either there or covered by announced loss notices (L10, L12, L13),
// and none arrives twice. It returns the count missing and the count announced.
func lossAccount(msgs []msg, prefix string) (first, last, missing, announced, dup int) {
	seen := map[int]bool{}
	first = -1
	for _, m := range msgs {
		if sm := steadyN.FindStringSubmatch(m.Text); sm != nil && sm[1] == prefix && m.Source == "app" {
			i, _ := strconv.Atoi(sm[2])
			if seen[i] {
				dup++
			}
			seen[i] = true
			if first < 0 || i < first {
				first = i
			}
			last = max(last, i)
			continue
		}
		if sm := l10.FindStringSubmatch(m.Text); sm != nil && m.Source == "kubeplex" {
			n, _ := strconv.Atoi(sm[1])
			announced += n
		}
	}
	for i := first; first >= 0 && i <= last; i++ {
		if !seen[i] {
			missing++
		}
	}
	return first, last, missing, announced, dup
}

// routerRestarts: deleting one router pod during steady logging loses nothing beyond
// what is announced; a rolling restart loses nothing.
func (s *suite) routerRestarts(t *testing.T) {
	kubectlIn(t, workerDeployment("steady2", "", "-prefix", "r1", "-lines", "-1", "-every", "20ms"), "apply", "-f", "-")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/steady2", "--timeout=180s")
	findText(t, s.https, time.Minute, "app", "steady2.", regexp.MustCompile(`^r1 out \d+$`))
	routers := func() []corev1.Pod {
		var pods corev1.PodList
		if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(systemNS), client.MatchingLabels{"app.kubernetes.io/component": "router"}); err != nil {
			t.Fatal(err)
		}
		return pods.Items
	}
	victim := routers()[0].Name
	kubectl(t, "delete", "pod", "-n", systemNS, victim, "--wait=true", "--timeout=60s")
	kubectl(t, "rollout", "status", "-n", systemNS, "deployment/"+release+"-router", "--timeout=180s")
	settle := func(what string) {
		t.Helper()
		// Wait until the stream has moved 200 lines past where it was, at the
		// receivers that were up the whole time (rsyslog lost what TCP cannot
		// report when the previous case stopped it).
		for _, name := range []string{"tls", "https"} {
			r := s.receivers()[name]
			msgs, _ := r.snapshot()
			_, mark, _, _, _ := lossAccount(msgs, "r1")
			eventually(t, time.Minute, fmt.Sprintf("%s gets r1 lines past %d", name, mark+200), func() error {
				msgs, _ := r.snapshot()
				if _, last, _, _, _ := lossAccount(msgs, "r1"); last < mark+200 {
					return fmt.Errorf("last r1 line %d", last)
				}
				return nil
			})
			msgs, _ = r.snapshot()
			first, last, missing, announced, dup := lossAccount(msgs, "r1")
			t.Logf("%s after %s: lines %d..%d, %d missing, %d announced lost, %d twice", name, what, first, last, missing, announced, dup)
			if missing > announced {
				t.Errorf("%s after %s: %d lines missing but only %d announced", name, what, missing, announced)
			}
		}
	}
	settle("deleting router pod " + victim)

	before := map[string]int{}
	for name, r := range s.receivers() {
		msgs, _ := r.snapshot()
		_, _, missing, _, _ := lossAccount(msgs, "r1")
		before[name] = missing
	}
	kubectl(t, "rollout", "restart", "-n", systemNS, "deployment/"+release+"-router")
	kubectl(t, "rollout", "status", "-n", systemNS, "deployment/"+release+"-router", "--timeout=180s")
	settle("rollout restart")
	for _, name := range []string{"tls", "https"} {
		msgs, _ := s.receivers()[name].snapshot()
		_, _, missing, _, _ := lossAccount(msgs, "r1")
		if missing != before[name] {
			t.Errorf("%s: the rolling restart lost %d lines", name, missing-before[name])
		}
	}
	kubectl(t, "delete", "-n", shopNS, "deployment/steady2", "--wait=false")
}

// webhookDown: with the manager scaled to 0 pods are still created, unwrapped; scaled
// back, new pods are injected, and no pod is injected twice.
func (s *suite) webhookDown(t *testing.T) {
	mgr := "deployment/" + release + "-manager"
	kubectl(t, "scale", "-n", systemNS, mgr, "--replicas=0")
	eventually(t, 2*time.Minute, "no manager pods", func() error {
		var pods corev1.PodList
		if err := cl.List(ctxFor(t, 30*time.Second), &pods, client.InNamespace(systemNS), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d manager pods", len(pods.Items))
		}
		return nil
	})
	kubectlIn(t, workerPod(shopNS, "nohook", "shop", "-lines", "1", "-exit", "0"), "apply", "-f", "-")
	var p corev1.Pod
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: "nohook"}, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Spec.InitContainers) != 0 || p.Spec.Containers[0].Command[0] != "/worker" {
		t.Errorf("pod created with the webhook down was changed: init %d, command %q", len(p.Spec.InitContainers), p.Spec.Containers[0].Command)
	}
	kubectl(t, "scale", "-n", systemNS, mgr, "--replicas=2")
	kubectl(t, "rollout", "status", "-n", systemNS, mgr, "--timeout=180s")
	waitInjecting(t, shopNS, "shop")
	kubectlIn(t, workerPod(shopNS, "hooked", "shop", "-lines", "1", "-exit", "0"), "apply", "-f", "-")
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: "hooked"}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Annotations["kubeplex.io/injection"] != "injected" {
		t.Fatalf("pod created after the manager came back not injected: %v", p.Annotations)
	}
	wraps, sidecars := 0, 0
	for _, c := range p.Spec.Containers {
		for _, a := range c.Command {
			if a == "/kubeplex/bin/collector" {
				wraps++
			}
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == "kubeplex-collector" {
			sidecars++
		}
	}
	if wraps != 1 || sidecars != 1 {
		t.Errorf("pod injected %d times (wrapper), %d sidecars", wraps, sidecars)
	}
	kubectl(t, "delete", "pod", "-n", shopNS, "nohook", "hooked", "--wait=false")
}

// runtimeObjects are what the manager creates at run time in its namespace. Helm
// never knew them; they are owned by the manager's Deployment (--owner-deployment),
// so the garbage collector deletes them with it (README, "Uninstall").
var runtimeObjects = []string{"secret/" + release + "-routes", "secret/kubeplex-webhook-cert", "secret/kubeplex-session-keys",
	"secret/kubeplex-platform", "lease/kubeplex-manager.kubeplex.io"}

// keepNS holds a user's LogApp across the uninstall.
const keepNS = "node-keep"

// helmUninstall: `helm uninstall` leaves nothing of kubeplex but the CRDs (Helm's
// policy) and what users made: their LogApps, with the token Secrets those own, stay
// and can still be deleted (no finalizer waits for the gone manager). The release
// namespace stays too (Helm does not delete a namespace --create-namespace made); it
// is empty.
func (s *suite) helmUninstall(t *testing.T) {
	logPeakMemory(t) // after every case that loads the routers
	kubectl(t, "delete", "namespace", shopNS, "--wait=true", "--timeout=180s")
	// The runtime objects exist and are owned by the manager's Deployment.
	var dep appsv1.Deployment
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: systemNS, Name: release + "-manager"}, &dep); err != nil {
		t.Fatal(err)
	}
	for _, name := range runtimeObjects {
		out := kubectl(t, "get", "-n", systemNS, name, "-o", "jsonpath={.metadata.ownerReferences[*].uid}")
		if out != string(dep.UID) {
			t.Errorf("%s: owners %q, want the manager Deployment %s", name, out, dep.UID)
		}
	}
	optIn(t, keepNS)
	logApp(t, keepNS, "kept", "")
	secrets := []string{"secret/kept" + kubeplexv1alpha1.TokenSecretSuffix, "secret/kept" + kubeplexv1alpha1.CollectorSecretSuffix}
	kept := make([]string, 0, 1+len(secrets))
	kept = append(kept, keepNS+"/logapp/kept")
	for _, sec := range secrets {
		kept = append(kept, keepNS+"/"+sec)
	}

	helm(t, "uninstall", release, "-n", systemNS, "--wait", "--timeout", "3m")
	eventually(t, 2*time.Minute, "nothing of kubeplex left after helm uninstall", func() error {
		if l := leftovers(t, kept...); len(l) > 0 {
			return fmt.Errorf("left after helm uninstall: %v", l)
		}
		return nil
	})
	// The user's app stays, with its Secrets (owned by the LogApp), and goes when
	// they delete it.
	for _, sec := range secrets {
		if out := kubectl(t, "get", "-n", keepNS, sec, "-o", "jsonpath={.metadata.ownerReferences[*].kind}/{.metadata.ownerReferences[*].name}"); out != "LogApp/kept" {
			t.Errorf("%s/%s: owners %q, want LogApp/kept", keepNS, sec, out)
		}
	}
	kubectl(t, "delete", "namespace", keepNS, "--wait=true", "--timeout=120s")
	kubectl(t, "delete", "namespace", systemNS, "--wait=true", "--timeout=180s")
	for _, crd := range []string{"logapps.kubeplex.io", "logdrains.kubeplex.io", "logsessions.kubeplex.io"} {
		kubectl(t, "get", "crd", crd) // kept by Helm's CRD policy
	}
	if l := leftovers(t); len(l) > 0 {
		t.Errorf("left after deleting the namespaces: %v", l)
	}
}

// leftovers lists kubeplex objects other than the CRDs, the namespaces and the
// ones named in keep ("NAMESPACE/kind/name"): every object of the kinds a release
// or the manager makes, in every namespace and cluster-wide, that carries one of
// kubeplex's labels or "kubeplex" in its name.
func leftovers(t *testing.T, keep ...string) []string {
	t.Helper()
	kinds := "deployments,replicasets,pods,services,endpointslices,serviceaccounts,secrets,configmaps,leases,roles,rolebindings," +
		"poddisruptionbudgets,networkpolicies,logapps,logdrains,logsessions,clusterroles,clusterrolebindings," +
		"mutatingwebhookconfigurations,validatingwebhookconfigurations"
	if _, err := runErr(kubectlB, "get", "crd", "servicemonitors.monitoring.coreos.com"); err == nil {
		kinds += ",servicemonitors"
	}
	const row = `{range .items[*]}{.metadata.namespace}/{.kind}/{.metadata.name} {.metadata.labels}{"\n"}{end}`
	out := kubectl(t, "get", kinds, "-A", "-o", "jsonpath="+row)
	var left []string
	for _, l := range strings.Split(out, "\n") {
		obj, labels, _ := strings.Cut(l, " ")
		if obj == "" {
			continue
		}
		ns, rest, _ := strings.Cut(obj, "/")
		kind, name, _ := strings.Cut(rest, "/")
		id := ns + "/" + strings.ToLower(kind) + "/" + name
		ours := strings.Contains(name, "kubeplex") || ns == systemNS && name != "default" && name != "kube-root-ca.crt" ||
			strings.Contains(labels, `"app.kubernetes.io/name":"kubeplex"`) || strings.Contains(labels, `"app.kubernetes.io/instance":"`+release+`"`) ||
			strings.Contains(labels, `"app.kubernetes.io/managed-by":"kubeplex"`) || kind == "LogApp" || kind == "LogDrain" || kind == "LogSession"
		// The node's own Lease bears its name (kubeplex-node); Events are not listed
		// (they expire on their own).
		if ours && ns != "kube-node-lease" && !slices.Contains(keep, id) {
			left = append(left, id)
		}
	}
	return left
}

// kustomize: kubectl apply -k config/default brings up the same stack, which injects
// pods and delivers; kubectl delete -k removes it.
func (s *suite) kustomize(t *testing.T) {
	kubectl(t, "apply", "-k", repo+"/config/default")
	for _, d := range []string{"kubeplex-manager", "kubeplex-router"} {
		kubectl(t, "rollout", "status", "-n", systemNS, "deployment/"+d, "--timeout=240s")
		var dep appsv1.Deployment
		if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: systemNS, Name: d}, &dep); err != nil {
			t.Fatal(err)
		}
		if dep.Status.ReadyReplicas != 2 {
			t.Errorf("%s: %d ready replicas, want 2", d, dep.Status.ReadyReplicas)
		}
	}
	ns := "node-kustomize"
	optIn(t, ns)
	logApp(t, ns, "kz", "")
	waitInjecting(t, ns, "kz")
	kubectl(t, "delete", "namespace", ns, "--wait=true", "--timeout=120s")
	kubectl(t, "delete", "-k", repo+"/config/default", "--wait=true", "--timeout=180s")
}

// criTail: a LogApp in CRITail mode captures a pod whose spec names no command from
// the kubelet's CRI log files, across a log rotation (the node rotates at 1 MiB) and
// with a line longer than the runtime's 16 KiB split.
func (s *suite) criTail(t *testing.T) {
	logApp(t, shopNS, "tailapp", "CRITail")
	logDrain(t, "tail-tls", "tailapp", "syslog+tls://"+s.tlsr.Addr, "  tls: {caSecretRef: {name: drain-ca, key: ca.crt}}\n")
	const lines, big = 6000, 20000
	// No command: the image's ENTRYPOINT (/worker) runs with these args.
	kubectlIn(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: tail-1
  namespace: %s
  labels: {kubeplex.io/app: tailapp, kubeplex.io/process-type: tail}
spec:
  restartPolicy: Never
  containers:
    - name: tail
      image: %s
      imagePullPolicy: Never
      args: ["-prefix", "t1", "-lines", "%d", "-every", "2ms", "-pad", "200", "-big", "%d"]
`, shopNS, workerImage, lines, big), "apply", "-f", "-")
	var p corev1.Pod
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: "tail-1"}, &p); err != nil {
		t.Fatal(err)
	}
	if p.Annotations["kubeplex.io/injection"] != "injected" || len(p.Spec.Containers[0].Command) != 0 {
		t.Fatalf("CRITail pod: injection %q, worker command %q (want injected, untouched)", p.Annotations["kubeplex.io/injection"], p.Spec.Containers[0].Command)
	}
	eventually(t, 3*time.Minute, "every numbered line of t1 at the receiver", func() error {
		msgs, errs := s.tlsr.snapshot()
		if len(errs) > 0 {
			return fmt.Errorf("receiver errors: %v", errs)
		}
		return checkSequence(procMsgs(msgs, "tail."), "t1", lines)
	})
	want := "t1 big " + strings.Repeat("x", big)
	eventually(t, time.Minute, "the long line, whole, at the receiver", func() error {
		msgs := procMsgs(func() []msg { m, _ := s.tlsr.snapshot(); return m }(), "tail.")
		for i, m := range msgs {
			if !strings.HasPrefix(m.Text, "t1 big ") {
				continue
			}
			// Lines over 10,000 bytes travel as several messages, in order.
			got := m.Text
			for j := i + 1; j < len(msgs) && len(got) < len(want); j++ {
				got += msgs[j].Text
			}
			if got != want {
				return fmt.Errorf("long line arrived as %d bytes (want %d), starting %.40q", len(got), len(want), got)
			}
			return nil
		}
		return fmt.Errorf("no message starts with \"t1 big \"")
	})
	// The kubelet really rotated the file the collector was reading.
	logDir := fmt.Sprintf("/var/log/pods/%s_%s_%s/tail", shopNS, p.Name, p.UID)
	entries, err := os.ReadDir(logDir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) < 2 {
		t.Errorf("no rotation happened in %s: %v (the case proves nothing about rotation)", logDir, names)
	}
	t.Logf("CRI log files of tail-1: %v", names)
	kubectl(t, "delete", "pod", "-n", shopNS, "tail-1", "--wait=false")
}

func procMsgs(msgs []msg, procPrefix string) []msg {
	var out []msg
	for _, m := range msgs {
		if strings.HasPrefix(m.Proc, procPrefix) {
			out = append(out, m)
		}
	}
	return out
}

// waitInjecting waits until a server-side dry run of a pod of app in ns comes back
// injected: the API server reached the webhook through its Service and trusted its
// certificate. Ready manager replicas are reachable only once kube-proxy has their
// endpoints; until then pods are admitted unchanged (failurePolicy Ignore).
func waitInjecting(t *testing.T, ns, app string) {
	t.Helper()
	eventually(t, time.Minute, "the webhook injects pods of "+ns+"/"+app, func() error {
		out, err := runErrIn(workerPod(ns, "probe", app, "-lines", "1"), kubectlB, "create", "--dry-run=server",
			"-o", "jsonpath={.metadata.annotations.kubeplex\\.io/injection}", "-f", "-")
		if err != nil {
			return fmt.Errorf("dry-run pod: %w", err)
		}
		if out != "injected" {
			return fmt.Errorf("dry-run pod injection %q", out)
		}
		return nil
	})
}

// column reads a cell of kubectl's table output by the header's position.
func column(table, row, col string) string {
	lines := strings.Split(table, "\n")
	at := strings.Index(lines[0], col)
	if at < 0 {
		return "no column " + col
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, row+" ") && len(l) > at {
			v, _, _ := strings.Cut(l[at:], " ")
			return v
		}
	}
	return "no row " + row
}

// imageCommand: a Deployment that names only an image (pulled by containerd from the
// suite's registry on the node) is wrapped with the image's ENTRYPOINT, read from
// that registry at admission, and its args; its lines arrive.
func (s *suite) imageCommand(t *testing.T) {
	image := s.reg.push(t, filepath.Join(repo, "dist", "node", "worker.tar"), "kubeplex-node/worker:registry")
	kubectlIn(t, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: imgcmd, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: imgcmd}}
  template:
    metadata:
      labels: {app: imgcmd, kubeplex.io/app: shop, kubeplex.io/process-type: imgcmd}
    spec:
      containers:
        - name: imgcmd
          image: %[2]s
          imagePullPolicy: Always
          args: ["-prefix", "g1", "-lines", "100", "-every", "5ms"]
`, shopNS, image), "apply", "-f", "-")
	kubectl(t, "rollout", "status", "-n", shopNS, "deployment/imgcmd", "--timeout=180s")
	pod := onePod(t, shopNS, "app=imgcmd")
	if pod.Annotations["kubeplex.io/injection"] != "injected" {
		t.Fatalf("pod not injected: %v", pod.Annotations)
	}
	if a := pod.Annotations[kubeplexv1alpha1.ImageCommandAnnotation]; !strings.HasPrefix(a, "imgcmd=sha256:") {
		t.Errorf("image-command annotation %q", a)
	}
	if got, want := strings.Join(pod.Spec.Containers[0].Command, " "), "/kubeplex/bin/collector run -- /worker -prefix g1 -lines 100 -every 5ms"; got != want {
		t.Errorf("worker command %q, want %q", got, want)
	}
	eventually(t, 2*time.Minute, "every line of g1 at the HTTPS receiver", func() error {
		msgs, _ := s.https.snapshot()
		return checkSequence(procMsgs(msgs, "imgcmd."), "g1", 100)
	})
	kubectl(t, "delete", "-n", shopNS, "deployment/imgcmd", "--wait=false")
}
