package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/webhook/certs"
)

const (
	managerNS  = "kubeplex-system"
	configName = "kubeplex-injector"
	testToken  = "t.4f9c1b1e-9d2a-4c55-8f0e-2b7d6c3a9e10"
)

var (
	scheme = testenv.Scheme()
	// logs collects everything the manager logs, so tests can check that no token
	// leaks into it.
	logs = &testenv.SyncBuffer{}
	// cluster starts on first use, so the pure tests and the fuzz workers do not pay
	// for it; the manager's logger is set with it.
	cluster = testenv.LazyCluster{Setup: func(*testenv.Cluster) error {
		logf.SetLogger(zap.New(zap.WriteTo(logs), zap.Level(zapcore.Level(-5)), zap.UseDevMode(true)))
		return nil
	}}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster.Started() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
		if code != 0 {
			// The manager's log helps with a failed test; it carries no secrets (asserted).
			s := logs.String()
			fmt.Fprintf(os.Stderr, "--- manager log (tail)\n%s\n", s[max(0, len(s)-20000):])
		}
	}
	os.Exit(code)
}

// clock is the certificate manager's time; tests move it forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type stack struct {
	c       client.Client
	port    int
	certDir string
	clock   *clock
	stop    context.CancelFunc
	done    chan error
}

// stackResources are the collector resources startStack's flags ask for.
var stackResources = corev1.ResourceRequirements{
	Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("25m"), corev1.ResourceMemory: resource.MustParse("20Mi")},
	Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("80Mi")},
}

// startStack installs the webhook configuration from config/webhook, pointed at a
// URL on 127.0.0.1 instead of the Service, then runs a manager serving it with
// self-managed certificates exactly as cmd/manager does (Setup).
func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackWith(t, nil)
}

// startStackWith is startStack with the manager's webhook options changed by opts.
func startStackWith(t *testing.T, opts func(*Options)) *stack {
	t.Helper()
	ctx := t.Context()
	env := cluster.Get(t)
	restCfg, c := env.Config, env.Client
	s := &stack{c: c, port: testenv.FreePort(t), certDir: t.TempDir(), clock: &clock{}, done: make(chan error, 1)}
	ensureNamespace(t, c, managerNS, nil)
	// Each stack starts without a certificate: one left by an earlier stack (another
	// test, or this one under go test -count=N) holds a CA from another clock.
	certSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: managerNS, Name: certs.DefaultSecretName}}
	if err := c.Delete(ctx, certSecret); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}

	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "webhook", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, &cfg); err != nil {
		t.Fatalf("config/webhook/mutatingwebhookconfiguration.yaml: %v", err)
	}
	if cfg.Name != configName || len(cfg.Webhooks) != 1 || cfg.Webhooks[0].ClientConfig.Service.Path == nil ||
		*cfg.Webhooks[0].ClientConfig.Service.Path != Path {
		t.Fatalf("config/webhook does not name %s with one webhook at %s", configName, Path)
	}
	url := "https://127.0.0.1:" + strconv.Itoa(s.port) + Path
	cfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	if err := c.Create(ctx, &cfg); err != nil {
		t.Fatalf("create webhook configuration: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), &cfg) })

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host: "127.0.0.1", Port: s.port, CertDir: s.certDir,
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Namespace:                managerNS,
		CollectorImage:           "kubeplex/collector:test",
		CollectorImagePullPolicy: "IfNotPresent",
		RouterURL:                "http://kubeplex-router.kubeplex-system.svc:8080/logs",
		CollectorCPURequest:      "25m",
		CollectorMemoryRequest:   "20Mi",
		CollectorCPULimit:        "200m",
		CollectorMemoryLimit:     "80Mi",
		CertManagement:           CertSelf,
		Service:                  "kubeplex-webhook",
		Configuration:            configName,
		CertSecret:               certs.DefaultSecretName,
		CertHosts:                "127.0.0.1",
		CAValidity:               60 * time.Minute,
		ServingValidity:          15 * time.Minute,
		CertCheckInterval:        200 * time.Millisecond,
		Now:                      s.clock.Now,
	}
	if opts != nil {
		opts(&o)
	}
	if err = Setup(ctx, mgr, o); err != nil {
		t.Fatalf("Setup: %v", err)
	}

	mctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { s.done <- mgr.Start(mctx) }()
	t.Cleanup(func() { s.shutdown(t) })
	// Ready once the server answers TLS with a certificate the configured CA trusts.
	testenv.Eventually(t, "webhook server serving a trusted certificate", func() error {
		_, err := s.servedCert(ctx)
		return err
	})
	return s
}

// shutdown stops the manager and waits for it, within testenv.WaitTimeout. What the manager
// returned is logged, not asserted: the tests judge the webhook, not its shutdown.
func (s *stack) shutdown(t *testing.T) {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Logf("manager stopped: %v", err)
		}
	case <-time.After(testenv.WaitTimeout):
	}
}

// caBundle is what the API server trusts for the webhook right now.
func (s *stack) caBundle(ctx context.Context) ([]byte, error) {
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := s.c.Get(ctx, client.ObjectKey{Name: configName}, &cfg); err != nil {
		return nil, err
	}
	return cfg.Webhooks[0].ClientConfig.CABundle, nil
}

// servedCert dials the webhook server and returns its leaf certificate, verified
// against the configuration's caBundle the way the API server verifies it.
func (s *stack) servedCert(ctx context.Context) (*x509.Certificate, error) {
	bundle, err := s.caBundle(ctx)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("caBundle holds no certificate")
	}
	d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", "127.0.0.1:"+strconv.Itoa(s.port))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }() // the handshake is done; nothing was written
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

func ensureNamespace(t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &ns); err == nil {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		for k, v := range labels {
			ns.Labels[k] = v
		}
		if err := c.Update(ctx, &ns); err != nil {
			t.Fatal(err)
		}
		return
	}
	ns = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := c.Create(ctx, &ns); err != nil {
		t.Fatal(err)
	}
}

// createApp creates a LogApp and its token Secret and, when ready, the status the
// LogApp reconciler would write. What an earlier run of the test left under the same
// names (go test -count=N shares one cluster) is replaced.
func createApp(t *testing.T, c client.Client, ns, name string, mode kubeplexv1alpha1.CollectorMode, ready bool) {
	t.Helper()
	ctx := t.Context()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + kubeplexv1alpha1.TokenSecretSuffix},
		Data:       map[string][]byte{kubeplexv1alpha1.TokenSecretKey: []byte(testToken)},
	}
	app := &kubeplexv1alpha1.LogApp{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       kubeplexv1alpha1.LogAppSpec{CollectorMode: mode},
	}
	for _, o := range []client.Object{secret, app} {
		if err := c.Delete(ctx, o.DeepCopyObject().(client.Object)); client.IgnoreNotFound(err) != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	if !ready {
		return
	}
	app.Status.TokenSecretName = secret.Name
	meta.SetStatusCondition(&app.Status.Conditions, metav1.Condition{
		Type: kubeplexv1alpha1.ReadyCondition, Status: metav1.ConditionTrue,
		Reason: kubeplexv1alpha1.ReconciledReason, Message: "test", ObservedGeneration: app.Generation,
	})
	if err := c.Status().Update(ctx, app); err != nil {
		t.Fatal(err)
	}
}

var podSeq atomic.Int32

// createPod creates a pod through the API server (and so through the webhook) and
// returns it as stored.
func createPod(t *testing.T, c client.Client, ns string, labels map[string]string, containers ...corev1.Container) *corev1.Pod {
	t.Helper()
	return createPodWith(t, c, ns, labels, nil, containers...)
}

// createPodWith is createPod with the pod changed by edit before it is created.
func createPodWith(t *testing.T, c client.Client, ns string, labels map[string]string, edit func(*corev1.Pod), containers ...corev1.Container) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("pod-%d", podSeq.Add(1)), Labels: labels},
		Spec:       corev1.PodSpec{Containers: containers},
	}
	if edit != nil {
		edit(pod)
	}
	if err := c.Create(t.Context(), pod); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	var stored corev1.Pod
	if err := c.Get(t.Context(), client.ObjectKeyFromObject(pod), &stored); err != nil {
		t.Fatal(err)
	}
	return &stored
}

func appLabels(app string) map[string]string {
	return map[string]string{kubeplexv1alpha1.AppLabel: app}
}

func findInit(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

func envOf(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func assertNoToken(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(testToken)) {
		t.Errorf("the ingest token appears in the stored pod %s", pod.Name)
	}
}

// assertTokenVolume checks that the sidecar reads the token from the LogApp's Secret
// mounted as a volume (which the kubelet refreshes after a rotation), with only the
// current token projected, and that no env var carries it.
func assertTokenVolume(t *testing.T, pod *corev1.Pod, side *corev1.Container) {
	t.Helper()
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == TokenVolumeName {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.Secret == nil || vol.Secret.SecretName != pod.Labels[kubeplexv1alpha1.AppLabel]+kubeplexv1alpha1.CollectorSecretSuffix ||
		len(vol.Secret.Items) != 1 || vol.Secret.Items[0].Key != "token" || vol.Secret.Items[0].Path != "token" {
		t.Errorf("token volume missing or wrong: %+v", vol)
	}
	mounted := 0
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if m.Name == TokenVolumeName {
				mounted++
				if c.Name != SidecarContainerName || m.MountPath != "/var/run/kubeplex/token" || !m.ReadOnly || m.SubPath != "" {
					t.Errorf("container %s mounts the token volume as %+v; want only the sidecar, read-only at /var/run/kubeplex/token", c.Name, m)
				}
			}
		}
	}
	if mounted != 1 {
		t.Errorf("token volume mounted %d times, want once (the sidecar)", mounted)
	}
	if e := envOf(side, EnvTokenFile); e == nil || e.Value != "/var/run/kubeplex/token/token" {
		t.Errorf("KUBEPLEX_TOKEN_FILE = %+v", e)
	}
	if e := envOf(side, "KUBEPLEX_TOKEN"); e != nil {
		t.Errorf("sidecar still gets KUBEPLEX_TOKEN: %+v", e)
	}
}

func assertUntouched(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if _, ok := pod.Annotations[kubeplexv1alpha1.InjectionAnnotation]; ok {
		t.Errorf("pod %s/%s annotated %v", pod.Namespace, pod.Name, pod.Annotations)
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Volumes) != 0 || pod.Spec.Containers[0].Command[0] == CollectorPath {
		t.Errorf("pod %s/%s mutated: %+v", pod.Namespace, pod.Name, pod.Spec)
	}
}

// review sends pod to the running webhook server as the API server would for a
// CREATE, over TLS verified against the configuration's caBundle.
func review(t *testing.T, s *stack, ns string, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "test",
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns,
			Operation: admissionv1.Create,
			Object:    runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := s.caBundle(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://127.0.0.1:"+strconv.Itoa(s.port)+Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only; Decode reports what matters
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("decode AdmissionReview (status %s): %v", resp.Status, err)
	}
	return out.Response
}

func TestWebhookEnvtest(t *testing.T) {
	s := startStack(t)
	c := s.c
	ctx := t.Context()
	worker := corev1.Container{Name: "web", Image: "shop/web:1", Command: []string{"/bin/web"}, Args: []string{"--port", "8080"}}

	ensureNamespace(t, c, "shop", map[string]string{kubeplexv1alpha1.InjectNamespaceLabel: "enabled"})
	createApp(t, c, "shop", "web", kubeplexv1alpha1.CollectorExec, true)

	var injected *corev1.Pod
	t.Run("exec mode injects sidecar, install step and wrapper", func(t *testing.T) {
		pod := createPod(t, c, "shop", appLabels("web"), worker)
		injected = pod
		if got := pod.Annotations[kubeplexv1alpha1.InjectionAnnotation]; got != kubeplexv1alpha1.InjectionInjected {
			t.Fatalf("injection annotation %q, want injected (reason %q)", got, pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation])
		}
		install := findInit(pod, InstallContainerName)
		if install == nil || strings.Join(install.Command, " ") != "/collector install /kubeplex/bin/collector /kubeplex-state/web" {
			t.Fatalf("install step missing or wrong: %+v", install)
		}
		side := findInit(pod, SidecarContainerName)
		if side == nil || side.RestartPolicy == nil || *side.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Fatalf("native sidecar missing or not restartPolicy Always: %+v", side)
		}
		if pod.Spec.InitContainers[0].Name != InstallContainerName || pod.Spec.InitContainers[1].Name != SidecarContainerName {
			t.Errorf("init order %s, %s; want install then sidecar", pod.Spec.InitContainers[0].Name, pod.Spec.InitContainers[1].Name)
		}
		assertTokenVolume(t, pod, side)
		// Resources from the manager's --collector-* flags (startStack sets non-defaults).
		for _, c := range []*corev1.Container{side, install} {
			if got := c.Resources; !equality.Semantic.DeepEqual(got, stackResources) {
				t.Errorf("%s resources %v, want %v", c.Name, got, stackResources)
			}
		}
		if e := envOf(side, EnvRouterURL); e == nil || e.Value != "http://kubeplex-router.kubeplex-system.svc:8080/logs" {
			t.Errorf("KUBEPLEX_ROUTER_URL = %+v", e)
		}
		// Its own inputs (OTLP, trace) are named after the one wrapped container.
		if e := envOf(side, EnvProcessType); e == nil || e.Value != "web" {
			t.Errorf("sidecar KUBEPLEX_PROCESS_TYPE = %+v, want web", e)
		}
		// The sidecar ships, with its pod and node (the API server took the fieldRefs).
		for name, path := range map[string]string{EnvPodName: "metadata.name", EnvNodeName: "spec.nodeName"} {
			if e := envOf(side, name); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
				t.Errorf("sidecar %s = %+v, want a fieldRef to %s", name, e, path)
			}
		}
		w := pod.Spec.Containers[0]
		if got, want := strings.Join(w.Command, " "), "/kubeplex/bin/collector run -- /bin/web --port 8080"; got != want || len(w.Args) != 0 {
			t.Errorf("worker command %q args %q, want %q and no args", got, w.Args, want)
		}
		for name, want := range map[string]string{EnvSocket: SocketPath, EnvProcessType: "web"} {
			if e := envOf(&w, name); e == nil || e.Value != want {
				t.Errorf("worker %s = %+v, want %q", name, e, want)
			}
		}
		if e := envOf(&w, EnvPodIndex); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.labels['apps.kubernetes.io/pod-index']" {
			t.Errorf("worker KUBEPLEX_POD_INDEX = %+v", e)
		}
		if len(pod.Spec.Volumes) != 3 || pod.Spec.Volumes[0].EmptyDir == nil || pod.Spec.Volumes[1].EmptyDir == nil ||
			len(w.VolumeMounts) != 2 || w.VolumeMounts[0].MountPath != MountPath || !w.VolumeMounts[0].ReadOnly ||
			w.VolumeMounts[1].MountPath != StatePath || w.VolumeMounts[1].ReadOnly || w.VolumeMounts[1].SubPath != w.Name {
			t.Errorf("shared or state volume or worker mounts wrong: %+v %+v", pod.Spec.Volumes, w.VolumeMounts)
		}
		assertNoToken(t, pod)
	})

	t.Run("re-invocation on the mutated pod changes nothing", func(t *testing.T) {
		if injected == nil {
			t.Skip("needs the pod of the previous subtest")
		}
		for i := range 2 {
			resp := review(t, s, "shop", injected)
			if !resp.Allowed || len(resp.Patch) != 0 {
				t.Fatalf("call %d: allowed %v, %d patches %v", i+1, resp.Allowed, len(resp.Patch), string(resp.Patch))
			}
		}
	})

	t.Run("container without command is skipped", func(t *testing.T) {
		pod := createPod(t, c, "shop", appLabels("web"), worker,
			corev1.Container{Name: "helper", Image: "shop/helper:1", Args: []string{"-v"}})
		if pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionSkipped ||
			!strings.Contains(pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation], "helper") {
			t.Fatalf("annotations %v, want skipped naming container helper", pod.Annotations)
		}
		if len(pod.Spec.InitContainers) != 0 || pod.Spec.Containers[0].Command[0] != "/bin/web" || len(pod.Spec.Containers[1].Command) != 0 {
			t.Errorf("skipped pod was changed: %+v", pod.Spec)
		}
		// The skip itself is final: the handler leaves an annotated pod alone.
		if resp := review(t, s, "shop", pod); !resp.Allowed || len(resp.Patch) != 0 {
			t.Errorf("re-invocation of a skipped pod: %d patches", len(resp.Patch))
		}
	})

	t.Run("CRITail mode tails instead of wrapping", func(t *testing.T) {
		ensureNamespace(t, c, "legacy", map[string]string{kubeplexv1alpha1.InjectNamespaceLabel: "enabled"})
		createApp(t, c, "legacy", "old", kubeplexv1alpha1.CollectorCRITail, true)
		noCmd := corev1.Container{Name: "app", Image: "vendor/app:9"}
		pod := createPod(t, c, "legacy", appLabels("old"), noCmd, corev1.Container{Name: "cron", Image: "vendor/cron:9"})
		if pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionInjected {
			t.Fatalf("annotations %v, want injected", pod.Annotations)
		}
		side := findInit(pod, SidecarContainerName)
		if side == nil || findInit(pod, InstallContainerName) != nil {
			t.Fatalf("want the sidecar and no install step: %+v", pod.Spec.InitContainers)
		}
		for name, want := range map[string]string{EnvMode: "CRITail", EnvContainers: "app,cron"} {
			if e := envOf(side, name); e == nil || e.Value != want {
				t.Errorf("sidecar %s = %+v, want %q", name, e, want)
			}
		}
		var hostPath *corev1.Volume
		for i := range pod.Spec.Volumes {
			if v := &pod.Spec.Volumes[i]; v.HostPath != nil && v.HostPath.Path == PodLogsPath {
				hostPath = v
			}
		}
		mounted := false
		for _, m := range side.VolumeMounts {
			mounted = mounted || (hostPath != nil && m.Name == hostPath.Name && m.MountPath == PodLogsPath && m.ReadOnly)
		}
		if !mounted {
			t.Errorf("no read-only %s hostPath mount in the sidecar: %+v / %+v", PodLogsPath, pod.Spec.Volumes, side.VolumeMounts)
		}
		if pod.Spec.Containers[0].Command != nil || len(pod.Spec.Containers[0].VolumeMounts) != 0 {
			t.Errorf("worker changed in CRITail mode: %+v", pod.Spec.Containers[0])
		}
		assertTokenVolume(t, pod, side)
		assertNoToken(t, pod)
	})

	t.Run("CRITail in a baseline namespace is skipped", func(t *testing.T) {
		ensureNamespace(t, c, "legacy-baseline", map[string]string{
			kubeplexv1alpha1.InjectNamespaceLabel: "enabled", "pod-security.kubernetes.io/enforce": "baseline"})
		createApp(t, c, "legacy-baseline", "old", kubeplexv1alpha1.CollectorCRITail, true)
		pod := createPod(t, c, "legacy-baseline", appLabels("old"), corev1.Container{Name: "app", Image: "vendor/app:9"})
		if pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionSkipped || len(pod.Spec.Volumes) != 0 {
			t.Fatalf("want skipped and no volumes, got %v %+v", pod.Annotations, pod.Spec.Volumes)
		}
	})

	t.Run("missing or unready LogApp leaves the pod unchanged", func(t *testing.T) {
		pod := createPod(t, c, "shop", appLabels("nosuchapp"), worker)
		if pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionSkipped ||
			!strings.Contains(pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation], `LogApp "nosuchapp" not found`) {
			t.Errorf("annotations %v", pod.Annotations)
		}
		createApp(t, c, "shop", "fresh", kubeplexv1alpha1.CollectorExec, false)
		pod = createPod(t, c, "shop", appLabels("fresh"), worker)
		if pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionSkipped ||
			!strings.Contains(pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation], "not ready") {
			t.Errorf("annotations %v", pod.Annotations)
		}
		for _, p := range []*corev1.Pod{pod} {
			if len(p.Spec.InitContainers) != 0 || p.Spec.Containers[0].Command[0] != "/bin/web" {
				t.Errorf("pod %s changed", p.Name)
			}
		}
	})

	t.Run("not opted in: namespace, pod, kube-system, manager namespace", func(t *testing.T) {
		ensureNamespace(t, c, "plain", nil)
		createApp(t, c, "plain", "web", kubeplexv1alpha1.CollectorExec, true)
		assertUntouched(t, createPod(t, c, "plain", appLabels("web"), worker))
		assertUntouched(t, createPod(t, c, "shop", map[string]string{"app": "web"}, worker))
		for _, ns := range []string{"kube-system", managerNS} {
			ensureNamespace(t, c, ns, map[string]string{kubeplexv1alpha1.InjectNamespaceLabel: "enabled"})
			createApp(t, c, ns, "web", kubeplexv1alpha1.CollectorExec, true)
			assertUntouched(t, createPod(t, c, ns, appLabels("web"), worker))
			// The handler refuses them too, should a configuration ever let them through.
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: appLabels("web")}, Spec: corev1.PodSpec{Containers: []corev1.Container{worker}}}
			if resp := review(t, s, ns, p); !resp.Allowed || len(resp.Patch) != 0 {
				t.Errorf("handler patched a pod in %s", ns)
			}
		}
	})

	t.Run("certificate rotation", func(t *testing.T) {
		secretKey := client.ObjectKey{Namespace: managerNS, Name: certs.DefaultSecretName}
		var secret corev1.Secret
		if err := c.Get(ctx, secretKey, &secret); err != nil {
			t.Fatal(err)
		}
		if secret.Type != corev1.SecretTypeTLS {
			t.Errorf("certificate Secret type %s", secret.Type)
		}
		firstCA := secret.Data[certs.CAKey]
		before, err := s.servedCert(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bundle0, _ := s.caBundle(ctx)
		if !bytes.Equal(bundle0, firstCA) {
			t.Fatal("caBundle is not the Secret's CA")
		}

		// 11 minutes on, the 15-minute serving certificate is due; the CA is not.
		s.clock.Advance(11 * time.Minute)
		testenv.Eventually(t, "new serving certificate served", func() error {
			got, err := s.servedCert(ctx)
			if err != nil {
				return err
			}
			if got.SerialNumber.Cmp(before.SerialNumber) == 0 {
				return fmt.Errorf("still serving serial %s", got.SerialNumber)
			}
			return nil
		})
		if b, _ := s.caBundle(ctx); !bytes.Equal(b, bundle0) {
			t.Error("caBundle changed on a serving-only renewal")
		}
		if p := createPod(t, c, "shop", appLabels("web"), worker); p.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionInjected {
			t.Errorf("pod not injected after serving renewal: %v", p.Annotations)
		}

		// 41 minutes on, the 60-minute CA is due: new CA, the old one still trusted.
		s.clock.Advance(30 * time.Minute)
		testenv.Eventually(t, "caBundle with the new and the previous CA", func() error {
			b, err := s.caBundle(ctx)
			if err != nil {
				return err
			}
			if n := bytes.Count(b, []byte("BEGIN CERTIFICATE")); n != 2 || !bytes.Contains(b, firstCA) {
				return fmt.Errorf("caBundle has %d certificates", n)
			}
			return nil
		})
		testenv.Eventually(t, "serving certificate from the new CA", func() error {
			got, err := s.servedCert(ctx)
			if err != nil {
				return err
			}
			block, _ := pem.Decode(firstCA)
			old, _ := x509.ParseCertificate(block.Bytes)
			if got.CheckSignatureFrom(old) == nil {
				return fmt.Errorf("still signed by the old CA")
			}
			return nil
		})
		if p := createPod(t, c, "shop", appLabels("web"), worker); p.Annotations[kubeplexv1alpha1.InjectionAnnotation] != kubeplexv1alpha1.InjectionInjected {
			t.Errorf("pod not injected after CA rotation: %v", p.Annotations)
		}
	})

	t.Run("pods are still created while the webhook is down", func(t *testing.T) {
		s.shutdown(t)
		testenv.Eventually(t, "webhook server gone", func() error {
			conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), time.Second)
			if err == nil {
				_ = conn.Close() // only the dial mattered
				return fmt.Errorf("still listening")
			}
			return nil
		})
		assertUntouched(t, createPod(t, c, "shop", appLabels("web"), worker))
	})

	t.Run("no token in the manager's log", func(t *testing.T) {
		out := logs.String()
		if !strings.Contains(out, "Pod admitted") {
			t.Fatal("the log capture saw no webhook activity; the check below would prove nothing")
		}
		if strings.Contains(out, testToken) {
			t.Error("the ingest token appears in the manager's log")
		}
	})
}
