package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// bins are the real binaries, built once: the CLI is tested as users run it.
var bins map[string]string

var cluster testenv.LazyCluster

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard()) // envtest's client logs nothing worth reading here
	var cleanup func()
	var err error
	bins, cleanup, err = testenv.Build("github.com/kubeplex/kubeplex/cmd/manager",
		"github.com/kubeplex/kubeplex/cmd/router", "github.com/kubeplex/kubeplex/cmd/kubeplex")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	cleanup()
	os.Exit(code)
}

const (
	systemNS   = "kubeplex-system"
	routesName = "kubeplex-routes"
)

// stack is a real API server, the manager and router processes, as in a cluster.
type stack struct {
	*testenv.Cluster
	admin   string // admin kubeconfig
	routers []string
	procs   []*testenv.Process
	ns      string
	// collector maps an app's ingest token to its collector credential, the only
	// one that may write the app's process events as source kubeplex.
	collector map[string]string
}

// newStack starts the manager and n routers against the package's API server, in
// a namespace of the test's own. Session URLs name the first router.
func newStack(t *testing.T, n int, managerArgs ...string) *stack {
	t.Helper()
	c := cluster.Get(t)
	ctx := ctxFor(t)
	s := &stack{Cluster: c, admin: c.AdminKubeconfig(t), ns: nsName(), collector: map[string]string{}}
	for _, ns := range []string{systemNS, s.ns} {
		err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
	}
	routerKC := s.routerKubeconfig(t)
	statusURLs := make([]string, 0, n)
	admins := make([]string, 0, n)
	for range n {
		port := testenv.FreePort(t)
		u := fmt.Sprintf("http://127.0.0.1:%d", port)
		s.routers = append(s.routers, u)
		admin := testenv.FreeAddr(t)
		admins = append(admins, admin)
		statusURLs = append(statusURLs, "http://"+admin+"/status")
	}
	// Each test owns the routing table while it runs: the manager is the only writer.
	testenv.Start(t, bins["manager"], nil, append([]string{"--kubeconfig", s.admin, "--namespace", systemNS,
		"--routes-secret", routesName, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--leader-elect=false", "--webhook-port", "0", "--allow-cidrs", "127.0.0.0/8",
		"--router-service", "", "--router-status-urls", strings.Join(statusURLs, ","),
		"--router-status-interval", "500ms", "--drain-status-interval", "500ms",
		"--session-base-url", s.routers[0]}, managerArgs...)...)
	for i, u := range s.routers {
		peers := slices.Delete(slices.Clone(s.routers), i, i+1)
		s.procs = append(s.procs, testenv.Start(t, bins["router"], nil, "--http-addr", strings.TrimPrefix(u, "http://"), "--admin-addr", admins[i],
			"--routes-secret", systemNS+"/"+routesName, "--kubeconfig", routerKC, "--allow-cidrs", "127.0.0.0/8",
			"--peers", strings.Join(peers, ","), "--session-buffer", "200"))
	}
	return s
}

var nsSeq int

func nsName() string {
	nsSeq++
	return fmt.Sprintf("t%d-%d", nsSeq, time.Now().UnixNano()%100000)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// routerKubeconfig provisions a user that may only read the routing-table Secrets, as
// the router's Role allows in a cluster.
func (s *stack) routerKubeconfig(t *testing.T) string {
	t.Helper()
	ctx := ctxFor(t)
	user := "router-" + s.ns
	kc, _ := s.User(t, user)
	names := []string{routesName}
	for i := 1; i < 16; i++ {
		names = append(names, routing.ShardName(routesName, i))
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: user, Namespace: systemNS},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: names, Verbs: []string{"get", "list", "watch"}}},
	}
	s.bind(t, ctx, role, user)
	return kc
}

// bind creates role (a Role) and binds it to user in the role's namespace.
func (s *stack) bind(t *testing.T, ctx context.Context, role *rbacv1.Role, user string) {
	t.Helper()
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: role.Namespace},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := s.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
}

// app creates a LogApp and waits until the manager made it Ready and every router
// runs a table with it; it returns the app's ingest token.
func (s *stack) app(t *testing.T, name string) string {
	t.Helper()
	ctx := ctxFor(t)
	a := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns}}
	if err := s.Client.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	var token string
	testenv.Eventually(t, "LogApp "+name+" Ready", func() error {
		var got kubeplexv1alpha1.LogApp
		if err := s.Client.Get(ctx, client.ObjectKeyFromObject(a), &got); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, kubeplexv1alpha1.ReadyCondition) || got.Status.TokenSecretName == "" {
			return fmt.Errorf("status %+v", got.Status)
		}
		var sec corev1.Secret
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: got.Status.TokenSecretName}, &sec); err != nil {
			return err
		}
		token = string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
		if err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name + kubeplexv1alpha1.CollectorSecretSuffix}, &sec); err != nil {
			return err
		}
		s.collector[token] = string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
		return nil
	})
	testenv.Eventually(t, "routers accept the app's tokens", func() error {
		for _, r := range s.routers {
			for _, tok := range []string{token, s.collector[token]} {
				if code, err := s.post(ctx, r, tok, nil); err != nil || code != http.StatusNoContent {
					return fmt.Errorf("router %s: status %d, %w", r, code, err)
				}
			}
		}
		return nil
	})
	return token
}

// line is one message a test sends; source is "app" unless set.
type line struct {
	source, proc, text string
	at                 time.Time
	sd                 string // RFC 5424 STRUCTURED-DATA (attributes), or none
}

// heroku is how a line reads in text form.
func (l line) heroku() string {
	src := l.source
	if src == "" {
		src = "app"
	}
	return l.at.UTC().Format(wire.TimeLayout) + " " + src + "[" + l.proc + "]: " + l.text
}

// send posts lines to one router as a collector would (logplex-1): lines of source
// kubeplex (process events) with the app's collector credential, the others with
// its ingest token.
func (s *stack) send(t *testing.T, router, token string, lines ...line) {
	t.Helper()
	var app, events []line
	for _, l := range lines {
		if l.source == "kubeplex" {
			events = append(events, l)
		} else {
			app = append(app, l)
		}
	}
	for _, b := range []struct {
		token string
		lines []line
	}{{token, app}, {s.collector[token], events}} {
		if len(b.lines) == 0 {
			continue
		}
		code, err := s.post(ctxFor(t), router, b.token, b.lines)
		if err != nil || code != http.StatusNoContent {
			t.Fatalf("post %d lines to %s: status %d, %v", len(b.lines), router, code, err)
		}
	}
}

func (s *stack) post(ctx context.Context, router, token string, lines []line) (int, error) {
	var body, rec []byte
	for _, l := range lines {
		at := l.at
		if at.IsZero() {
			at = time.Now()
		}
		src := l.source
		if src == "" {
			src = "app"
		}
		rec = wire.AppendRFC5424(rec[:0], &wire.Message{Priority: wire.PriorityInfo, Time: at,
			Hostname: "host", AppName: src, ProcID: l.proc, StructuredData: []byte(l.sd), Text: []byte(l.text)})
		body = wire.AppendFrame(body, rec)
	}
	br := wire.BatchRequest{URL: router + "/logs", Body: body, Count: len(lines), Password: token, Username: "token"}
	req, err := br.NewRequest(ctx)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close() // status is all that matters
	return resp.StatusCode, nil
}

// runCLI runs the kubeplex binary with args as the user of kubeconfig and returns its
// stdout, stderr and error.
func runCLI(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(ctxFor(t), bins["kubeplex"], append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.Env = append(os.Environ(), "NO_COLOR=")
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustCLI is cli that fails the test on a non-zero exit.
func mustCLI(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, kubeconfig, args...)
	if err != nil {
		t.Fatalf("kubeplex %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}
