package webhook

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// The layout tests run the real collector binary in the file-system layout Mutate
// gives a pod: every volume is a host directory, every container's mounts are bind
// mounts in a private mount namespace (read-only ones really read-only, as the
// kubelet makes them), and each container runs as its securityContext's user. Only
// the paths differ from a pod's (host directories instead of /kubeplex...), which
// the commands and environment are rewritten for. It needs root (mount namespaces).

// layoutToken is the ingest token the pod's token Secret holds.
const layoutToken = "t.0a1b2c3d-0000-4000-8000-00000000beef"

// receiver is a logplex-1 endpoint on 127.0.0.1 that keeps every record it accepts.
type receiver struct {
	url  string
	mu   sync.Mutex
	recs []wire.Fields
}

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if tok, ok := wire.RequestToken(req); !ok || tok != layoutToken {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		b, err := wire.ReadBatch(req, 0, 0, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rec := range b.Records {
			if f, err := wire.Scan(slices.Clone(rec)); err == nil {
				r.recs = append(r.recs, f)
			}
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.url = "http://" + ln.Addr().String() + "/logs"
	return r
}

// lines returns "SOURCE[PROC] MSGID: TEXT" for every record received so far.
func (r *receiver) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.recs))
	for _, f := range r.recs {
		msgID := string(f.MsgID)
		if msgID == "" {
			msgID = "-"
		}
		out = append(out, fmt.Sprintf("%s[%s] %s: %s", f.AppName, f.ProcID, msgID, f.Text))
	}
	return out
}

// hostPod is a mutated pod laid out on the host.
type hostPod struct {
	pod  *corev1.Pod
	root string
	bin  string // the collector binary (the image's /collector)
}

func layOut(t *testing.T, pod *corev1.Pod, bin string) *hostPod {
	t.Helper()
	root, err := os.MkdirTemp("", "kubeplex-layout-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	// Reachable by the containers' users, as /var/lib/kubelet/pods/... is.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	hp := &hostPod{pod: pod, root: root, bin: bin}
	for _, v := range pod.Spec.Volumes {
		dir := filepath.Join(root, "volumes", v.Name)
		switch {
		case v.EmptyDir != nil:
			// The kubelet makes an emptyDir world-writable.
			if err := os.MkdirAll(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		case v.Secret != nil:
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, item := range v.Secret.Items {
				if item.Key != kubeplexv1alpha1.TokenSecretKey {
					t.Fatalf("unexpected Secret key %q projected", item.Key)
				}
				if err := os.WriteFile(filepath.Join(dir, item.Path), []byte(layoutToken), 0o444); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("volume %s: kind not laid out by this test", v.Name)
		}
	}
	if err := os.Chmod(filepath.Join(root, "volumes"), 0o755); err != nil {
		t.Fatal(err)
	}
	return hp
}

type mount struct {
	container, host string
	readOnly        bool
}

func (hp *hostPod) mounts(t *testing.T, c *corev1.Container) []mount {
	t.Helper()
	ms := make([]mount, 0, len(c.VolumeMounts))
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(hp.root, "volumes", m.Name)
		if m.SubPath != "" {
			dir = filepath.Join(dir, m.SubPath)
		}
		ms = append(ms, mount{container: m.MountPath, host: dir, readOnly: m.ReadOnly})
	}
	// Longest container path first, so /kubeplex-state wins over /kubeplex.
	sort.Slice(ms, func(i, j int) bool { return len(ms[i].container) > len(ms[j].container) })
	return ms
}

// rewrite maps a container path to its host path.
func rewrite(ms []mount, s string) string {
	for _, m := range ms {
		if s == m.container || strings.HasPrefix(s, m.container+"/") {
			return m.host + s[len(m.container):]
		}
	}
	return s
}

// command returns the container's process, ready to start: in its own mount
// namespace, with its read-only mounts remounted read-only, as its user.
func (hp *hostPod) command(t *testing.T, c *corev1.Container, extraEnv ...string) *exec.Cmd {
	t.Helper()
	ms := hp.mounts(t, c)
	args := slices.Clone(c.Command)
	for i := range args {
		if args[i] == ImageBinary {
			args[i] = hp.bin
			continue
		}
		args[i] = rewrite(ms, args[i])
	}
	env := make([]string, 0, 2+len(c.Env)+len(extraEnv))
	env = append(env, "PATH="+os.Getenv("PATH"), "KUBEPLEX_LOG_LEVEL=debug")
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			switch p := e.ValueFrom.FieldRef.FieldPath; p {
			case "metadata.name":
				v = hp.pod.Name
			case "metadata.namespace":
				v = hp.pod.Namespace
			case "metadata.uid":
				v = string(hp.pod.UID)
			default:
				v = "" // the pod-index label is absent on a Deployment's pod
			}
		}
		env = append(env, e.Name+"="+rewrite(ms, v))
	}
	// A pod has its own loopback; this host does not, and other collectors on it may
	// hold the sidecar's fixed trace ports (flake-hunt: "listen udp 127.0.0.1:5140:
	// bind: address already in use"). Free ports instead; nothing here sends traces.
	env = append(env, "KUBEPLEX_TRACE_SYSLOG_ADDR="+testenv.FreeAddr(t), "KUBEPLEX_TRACE_HTTP_ADDR="+testenv.FreeAddr(t),
		"KUBEPLEX_TRACE_OTLP_ADDR="+testenv.FreeAddr(t))
	env = append(env, extraEnv...)
	uid := int64(0)
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	var script strings.Builder
	for _, m := range ms {
		if m.readOnly {
			fmt.Fprintf(&script, "mount --bind %[1]s %[1]s && mount -o remount,bind,ro %[1]s && ", m.host)
		}
	}
	fmt.Fprintf(&script, `exec setpriv --reuid %d --regid %d --clear-groups "$@"`, uid, uid)
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script.String(), "--"}, args...)...)
	cmd.Env = env
	return cmd
}

func layoutPrereqs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the layout is built with mount namespaces and per-container users")
	}
	if out, err := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount --bind / /mnt 2>/dev/null || mount -t tmpfs none /mnt").CombinedOutput(); err != nil {
		t.Skipf("mount namespaces unavailable here: %v %s", err, out)
	}
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/collector")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	// The binary directory must be reachable by the containers' users.
	if err := os.Chmod(filepath.Dir(bins["collector"]), 0o755); err != nil {
		t.Fatal(err)
	}
	return bins["collector"]
}

func layoutPod(command ...string) *corev1.Pod {
	uid := int64(1000)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-5d8f-x2k4q", Namespace: "shop", UID: "6f1c0c1e-1111-4222-8333-444455556666",
			Labels: map[string]string{kubeplexv1alpha1.AppLabel: "web", kubeplexv1alpha1.ProcessTypeLabel: "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "web", Image: "shop/web", Command: command,
			SecurityContext: &corev1.SecurityContext{RunAsUser: &uid},
		}}},
	}
}

// startPod runs the install step and the sidecar of a mutated pod and returns the
// sidecar (running) once it listens.
func startPod(t *testing.T, hp *hostPod) *exec.Cmd {
	t.Helper()
	var sidecar *exec.Cmd
	for i := range hp.pod.Spec.InitContainers {
		c := &hp.pod.Spec.InitContainers[i]
		cmd := hp.command(t, c)
		out := &testenv.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if c.Name == InstallContainerName {
			if err := cmd.Run(); err != nil {
				t.Fatalf("install step: %v\n%s", err, out.String())
			}
			continue
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		testenv.Eventually(t, "sidecar started", func() error {
			if !strings.Contains(out.String(), "collector sidecar started") {
				return fmt.Errorf("sidecar output so far: %s", out.String())
			}
			return nil
		})
		sidecar = cmd
	}
	return sidecar
}

// runWorker runs the pod's first container to its end, as one container start.
func runWorker(t *testing.T, hp *hostPod, extraEnv ...string) string {
	t.Helper()
	cmd := hp.command(t, &hp.pod.Spec.Containers[0], extraEnv...)
	out, _ := cmd.CombinedOutput() // the worker's exit status is the test's subject, read from the stream
	return string(out)
}

func stopSidecar(t *testing.T, sidecar *exec.Cmd) {
	t.Helper()
	// unshare passes SIGTERM on to the collector it exec'd into.
	if err := sidecar.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sidecar.Wait() }()
	select {
	case err := <-done:
		t.Logf("sidecar exit: %v", err) // the interrupt ends it; how is for the log
	case <-time.After(60 * time.Second):
		_ = sidecar.Process.Kill()
		t.Fatal("sidecar did not stop")
	}
}

func contains(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// TestLayoutRestartCount: in the webhook's layout (the worker's /kubeplex read-only,
// its own state directory writable, the worker a different user than the sidecar),
// a container restart is reported with how the previous run ended, and no warning.
func TestLayoutRestartCount(t *testing.T) {
	bin := layoutPrereqs(t)
	r := startReceiver(t)
	pod := layoutPod("sh", "-c", "echo run; exit 3")
	if !Mutate(pod, Target{App: "web", TokenSecretName: "web-kubeplex-token"}, Config{CollectorImage: "c", RouterURL: r.url}) {
		t.Fatalf("not injected: %s", pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation])
	}
	hp := layOut(t, pod, bin)
	sidecar := startPod(t, hp)
	out1 := runWorker(t, hp)
	out2 := runWorker(t, hp)
	stopSidecar(t, sidecar)
	lines := r.lines()
	if want := "kubeplex[web.x2k4q] -: Process restarted (start 2); the previous run process exited with status 3"; !contains(lines, want) {
		t.Errorf("no %q in\n%s\nworker output:\n%s\n%s", want, strings.Join(lines, "\n"), out1, out2)
	}
	if contains(lines, "kubeplex[web.x2k4q] state-error") {
		t.Errorf("state warning in a writable layout:\n%s", strings.Join(lines, "\n"))
	}
	if n := strings.Count(strings.Join(lines, "\n"), "app[web.x2k4q] -: run"); n != 2 {
		t.Errorf("%d worker lines, want 2:\n%s", n, strings.Join(lines, "\n"))
	}
}

// TestLayoutStateNotWritable: when the state directory is read-only (as the shared
// /kubeplex mount is in workers), the failed write is a warning in the stream (MSGID
// state-error, which the router counts), not a silent loss of restart events.
func TestLayoutStateNotWritable(t *testing.T) {
	bin := layoutPrereqs(t)
	r := startReceiver(t)
	pod := layoutPod("sh", "-c", "exit 0")
	if !Mutate(pod, Target{App: "web", TokenSecretName: "web-kubeplex-token"}, Config{CollectorImage: "c", RouterURL: r.url}) {
		t.Fatal("not injected")
	}
	hp := layOut(t, pod, bin)
	sidecar := startPod(t, hp)
	out := runWorker(t, hp, EnvStateDir+"="+filepath.Join(hp.root, "volumes", VolumeName))
	stopSidecar(t, sidecar)
	lines := r.lines()
	if !contains(lines, "kubeplex[web.x2k4q] state-error: Warning: cannot keep this process's restart count (") {
		t.Errorf("no state warning in\n%s\nworker output:\n%s", strings.Join(lines, "\n"), out)
	}
	if !contains(lines, "kubeplex[web.x2k4q] -: Process exited with status 0") {
		t.Errorf("exit event missing:\n%s", strings.Join(lines, "\n"))
	}
}

// TestLayoutSocketTrust: a process inside the worker that connects to the sidecar
// socket itself (here a second wrapper, which writes the same records a forger
// would) cannot write process events: only the wrapper's connection can.
func TestLayoutSocketTrust(t *testing.T) {
	bin := layoutPrereqs(t)
	r := startReceiver(t)
	// The worker runs a nested wrapper with a made-up process name.
	pod := layoutPod("sh", "-c", `KUBEPLEX_PROCESS=forged.1 "$0" run -- sh -c 'echo nested'; echo outer`, CollectorPath)
	if !Mutate(pod, Target{App: "web", TokenSecretName: "web-kubeplex-token"}, Config{CollectorImage: "c", RouterURL: r.url}) {
		t.Fatal("not injected")
	}
	hp := layOut(t, pod, bin)
	sidecar := startPod(t, hp)
	out := runWorker(t, hp)
	stopSidecar(t, sidecar)
	lines := r.lines()
	all := strings.Join(lines, "\n")
	for _, want := range []string{"app[forged.1] -: nested", "app[web.x2k4q] -: outer", "kubeplex[web.x2k4q] -: Process exited with status 0",
		"app[forged.1] -: Process exited with status 0"} {
		if !contains(lines, want) {
			t.Errorf("missing %q in\n%s\nworker output:\n%s", want, all, out)
		}
	}
	if strings.Contains(all, "kubeplex[forged.1]") {
		t.Errorf("a second connection wrote process events:\n%s", all)
	}
}
