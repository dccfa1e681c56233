package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestDeploySourceMemory measures what unrelated workloads cost the manager: its
// memory with no Deployments, then, restarted, with KUBEPLEX_DEPLOY_MEMORY of them
// (none an app's, in namespaces without a LogApp) beside one app's. A measurement,
// not a check: it runs only when asked (docs/sources.md has the figures).
func TestDeploySourceMemory(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KUBEPLEX_DEPLOY_MEMORY"))
	if n <= 0 {
		t.Skip("set KUBEPLEX_DEPLOY_MEMORY=2000 to measure")
	}
	c := startCluster(t)
	ctx := contextFor(t, 20*time.Minute)
	for _, ns := range []string{systemNS, "shop"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Client.Create(ctx, &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.Create(ctx, bigDeployment("shop", "web", true)); err != nil {
		t.Fatal(err)
	}
	measure := func(what string) {
		t.Helper()
		metrics := testenv.FreeAddr(t)
		mgr := start(t, "manager", "--kubeconfig", c.kubeconfig, "--namespace", systemNS,
			"--metrics-bind-address", metrics, "--health-probe-bind-address", "0", "--leader-elect=true",
			"--webhook-port", "0", "--router-service", "", "--router-url", "http://127.0.0.1:1/logs")
		testenv.Until(t, "the manager leads and its deploy source listed everything", func() bool {
			return strings.Contains(mgr.Out.String(), `"msg":"deploy source watches the namespace's workloads"`)
		})
		// Live heap: the lists' garbage stays counted until a GC runs, and an idle
		// manager may not run one until the runtime's 2-minute forced GC. So wait
		// for a GC that started after the lists were taken, then read.
		listed := float64(time.Now().Add(5*time.Second).UnixNano()) / 1e9
		url := "http://" + metrics + "/metrics"
		testenv.EventuallyWithin(t, "a GC after the lists", 4*time.Minute, func() error {
			if scrape(t, url, "go_memstats_last_gc_time_seconds") <= listed {
				return fmt.Errorf("no GC since the lists")
			}
			return nil
		})
		time.Sleep(2 * time.Second) // the background sweep after it (a measurement, not a check)
		heap := scrape(t, url, "go_memstats_alloc_bytes")
		rss, peak := procMemory(t, mgr.Cmd.Process.Pid)
		t.Logf("%s: heap after GC %.1f MiB, RSS %.1f MiB, peak RSS %.1f MiB", what, heap/(1<<20), rss/(1<<20), peak/(1<<20))
		if err := mgr.Stop(30 * time.Second); err != nil {
			t.Logf("manager stop: %v", err)
		}
	}
	measure("no other Deployments")

	began := time.Now()
	for i := 0; i < n; i += 100 {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("other-%d", i/100)}}); err != nil {
			t.Fatal(err)
		}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	var failed sync.Once
	for range 4 {
		wg.Go(func() {
			for i := range work {
				if err := c.Client.Create(ctx, bigDeployment(fmt.Sprintf("other-%d", i/100), fmt.Sprintf("svc-%d", i), false)); err != nil {
					failed.Do(func() { t.Error(err) })
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("created %d Deployments in %d namespaces in %s", n, (n+99)/100, time.Since(began).Round(time.Second))
	measure(fmt.Sprintf("%d other Deployments", n))
}

// bigDeployment is a Deployment of the size real ones have: two containers with
// env, resources and probes, and kubectl's last-applied annotation.
func bigDeployment(ns, name string, app bool) *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "shop", "tier": "backend"}
	tmpl := map[string]string{"app.kubernetes.io/name": name}
	if app {
		tmpl[kubeplexv1alpha1.AppLabel] = name
	}
	env := make([]corev1.EnvVar, 0, 12)
	for i := range 12 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("SETTING_%d", i), Value: strings.Repeat("v", 24)})
	}
	ctr := func(n string) corev1.Container {
		return corev1.Container{Name: n, Image: "registry.example/" + name + "/" + n + ":1.42.7", Env: env,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt(8080)}}},
			LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/live", Port: intstr.FromInt(8080)}}}}
	}
	two := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: tmpl},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl},
				Spec: corev1.PodSpec{Containers: []corev1.Container{ctr("main"), ctr("proxy")}}}},
	}
	applied, _ := json.Marshal(d)
	d.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	return d
}

// scrape reads one unlabelled sample from a Prometheus text endpoint.
func scrape(t *testing.T, url, metric string) float64 {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test's local scrape
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s", metric, url)
	return 0
}

// procMemory is a process's VmRSS and VmHWM in bytes.
func procMemory(t *testing.T, pid int) (rss, peak float64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		for key, dst := range map[string]*float64{"VmRSS:": &rss, "VmHWM:": &peak} {
			if v, ok := strings.CutPrefix(line, key); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				*dst = kb * 1024
			}
		}
	}
	return rss, peak
}
