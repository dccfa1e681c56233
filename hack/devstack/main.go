// Command devstack runs kubeplex on one machine with no cluster: a real kube-apiserver
// and etcd (envtest assets built by `make envtest`), the manager, a router, a syslog
// drain that prints what it receives, and a sample worker under the collector.
// It is what `make run` starts; Ctrl-C stops everything.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// The names devstack creates: the demo app and its drain, and the namespace and
// identity the manager and router run with (the chart's defaults).
const (
	demoNamespace   = "demo"
	demoApp         = "web"
	systemNamespace = "kubeplex-system"
	routerName      = "kubeplex-router"
	routesSecret    = "kubeplex-routes"
)

type options struct {
	binDir     string
	stateDir   string
	routerAddr string
	adminAddr  string
	workerCmd  string
	out        io.Writer // the banner and the console drain's lines
}

func main() {
	o := options{out: os.Stdout}
	flag.StringVar(&o.binDir, "bin", "bin", "folder with the manager, router and collector binaries")
	flag.StringVar(&o.stateDir, "state", "bin/devstack", "folder for kubeconfigs and logs")
	flag.StringVar(&o.routerAddr, "router-addr", "127.0.0.1:8080", "router HTTP address")
	flag.StringVar(&o.adminAddr, "router-admin-addr", "127.0.0.1:9090", "router admin address (/status, /metrics)")
	flag.StringVar(&o.workerCmd, "worker", `i=0; while true; do i=$((i+1)); echo "tick $i"; [ $((i % 5)) -eq 0 ] && echo "warning $i" >&2; sleep 2; done`,
		"shell command of the sample worker")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set; use `make run`")
	}
	if err := os.MkdirAll(o.stateDir, 0o755); err != nil {
		return err
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kubeplexv1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	admin := filepath.Join(o.stateDir, "admin.kubeconfig")
	if err := os.WriteFile(admin, env.KubeConfig, 0o600); err != nil {
		return err
	}
	routerKC, err := routerKubeconfig(ctx, env, c, o.stateDir)
	if err != nil {
		return err
	}

	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { _ = sink.Close() }() // only ends printDrain's Accept loop
	go printDrain(sink, o.out)

	procs := []*exec.Cmd{
		command(ctx, o, "manager", nil, "--kubeconfig", admin, "--namespace", systemNamespace, "--routes-secret", routesSecret,
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--leader-elect=false", "--webhook-port", "0",
			"--allow-cidrs", "127.0.0.0/8",
			// No router Service to discover here: read the dev router's /status directly,
			// so LogDrain status shows Delivering and delivered counts as in a cluster.
			"--router-service", "", "--router-status-urls", "http://"+o.adminAddr+"/status", "--router-status-interval", "5s",
			// Log sessions (kubeplex logs, the viewer) on the dev router.
			"--session-base-url", "http://"+o.routerAddr),
		command(ctx, o, "router", nil, "--http-addr", o.routerAddr, "--admin-addr", o.adminAddr,
			"--routes-secret", systemNamespace+"/"+routesSecret,
			"--kubeconfig", routerKC, "--allow-cidrs", "127.0.0.0/8"),
	}
	for _, p := range procs {
		if err := p.Start(); err != nil {
			return fmt.Errorf("start %s: %w", p.Path, err)
		}
	}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}},
		&kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: demoApp, Namespace: demoNamespace}},
		&kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "console", Namespace: demoNamespace},
			Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: demoApp}, URL: "syslog://" + sink.Addr().String()}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	token, err := waitToken(ctx, c)
	if err != nil {
		return err
	}
	// Start the worker only once the router runs a table that knows the app, or its
	// first lines would meet a 401.
	if err := waitRouter(ctx, "http://"+o.adminAddr); err != nil {
		return err
	}
	worker := command(ctx, o, "collector", []string{"KUBEPLEX_ROUTER_URL=http://" + o.routerAddr + "/logs", "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_PROCESS=worker.1"}, "run", "--", "sh", "-c", o.workerCmd)
	if err := worker.Start(); err != nil {
		return err
	}
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cli := filepath.Join(o.binDir, "kubeplex")
	if abs, err := filepath.Abs(cli); err == nil {
		cli = abs
	}
	_, _ = fmt.Fprintf(o.out, `
kubeplex dev stack is up.
  kubeconfig:   export KUBECONFIG=%[1]s
  resources:    %[2]s get logapps,logdrains -A
  tail the app: %[3]s --kubeconfig %[1]s logs %[4]s -n %[5]s --tail
  web viewer:   %[3]s --kubeconfig %[1]s console   (then "Open viewer" on app %[4]s)
                (the first session waits up to 30 s for the new signing key to settle)
  router:       http://%[6]s  (POST /logs); admin http://%[7]s  (/status, /metrics)
  logs:         %[8]s/*.log
The "console" drain prints below what the router delivers. Ctrl-C stops everything.

`, admin, kubectl, cli, demoApp, demoNamespace, o.routerAddr, o.adminAddr, o.stateDir)
	<-ctx.Done()
	return ctx.Err()
}

func command(ctx context.Context, o options, name string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(o.binDir, name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if f, err := os.Create(filepath.Join(o.stateDir, name+".log")); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	return cmd
}

func routerKubeconfig(ctx context.Context, env *envtest.Environment, c client.Client, dir string) (string, error) {
	u, err := env.AddUser(envtest.User{Name: routerName}, nil)
	if err != nil {
		return "", err
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: routerName, Namespace: systemNamespace},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
				ResourceNames: []string{routesSecret}, Verbs: []string{"get", "list", "watch"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: routerName, Namespace: systemNamespace},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: routerName},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: routerName}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return "", err
		}
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "router.kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

func waitToken(ctx context.Context, c client.Client) (string, error) {
	for {
		var app kubeplexv1alpha1.LogApp
		if err := c.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: demoApp}, &app); err == nil && app.Status.TokenSecretName != "" {
			// The collector credential, as an injected sidecar has it: its process
			// events are then kubeplex lines (an ingest token would file them as app).
			var s corev1.Secret
			key := client.ObjectKey{Namespace: demoNamespace, Name: demoApp + kubeplexv1alpha1.CollectorSecretSuffix}
			if err := c.Get(ctx, key, &s); err == nil {
				return string(s.Data[kubeplexv1alpha1.TokenSecretKey]), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func waitRouter(ctx context.Context, base string) error {
	for {
		if resp, err := http.Get(base + "/status"); err == nil {
			var st routing.RouterStatus
			err = json.NewDecoder(resp.Body).Decode(&st)
			_ = resp.Body.Close() // read-only; the decode result decides
			if err == nil && len(st.Drains) > 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// printDrain prints each received frame in the user-facing form:
// TIME SOURCE[PROC]: TEXT.
func printDrain(l net.Listener, w io.Writer) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = conn.Close() }() // read-only side of the drain
			fr := wire.NewFrameReader(bufio.NewReader(conn), 0)
			for {
				rec, err := fr.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						_, _ = fmt.Fprintln(w, "drain:", err)
					}
					return
				}
				m, err := wire.Parse(rec)
				if err != nil {
					_, _ = fmt.Fprintln(w, "drain: bad frame:", err)
					continue
				}
				_, _ = fmt.Fprintf(w, "%s %s[%s]: %s\n", m.Time.Format(wire.TimeLayout), m.AppName, m.ProcID, strings.TrimRight(string(m.Text), "\n"))
			}
		}()
	}
}
