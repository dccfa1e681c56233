package cli_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/cli"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// marked keeps the lines of out that carry marker, so lines the platform adds to the
// stream (routing-table notices) do not disturb exact checks.
func marked(out, marker string) []string {
	var got []string
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if strings.Contains(l, marker) {
			got = append(got, l)
		}
	}
	return got
}

func texts(ls []line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.heroku()
	}
	return out
}

// TestLogs reads history merged from two routers through the CLI binary: order,
// count, each filter, JSON, then a tail that sees new lines from both routers.
func TestLogs(t *testing.T) {
	s := newStack(t, 2)
	token := s.app(t, "web")
	t0 := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	sent := []line{
		{proc: "web.1", text: "hist-0 GET /"},
		{proc: "web.2", text: "hist-1 GET /cart"},
		{proc: "worker.1", text: "hist-2 job done"},
		{proc: "web.1", text: "hist-3 GET /pay"},
		{source: "kubeplex", proc: "web.2", text: "hist-4 Process exited with status 0"},
		{proc: "web.2", text: "hist-5 GET /bye"},
	}
	for i := range sent {
		sent[i].at = t0.Add(time.Duration(i) * time.Millisecond)
	}
	// Odd lines to the second router, even to the first: only the merge puts them
	// together. (A router's history is in arrival order, as in Logplex.)
	for i := range sent {
		s.send(t, s.routers[i%2], token, sent[i])
	}

	pick := func(idx ...int) []string {
		out := make([]string, 0, len(idx))
		for _, i := range idx {
			out = append(out, sent[i].heroku())
		}
		return out
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"history from both routers, oldest first", nil, texts(sent)},
		{"--num", []string{"--num", "3"}, pick(3, 4, 5)},
		{"--source", []string{"-s", "kubeplex"}, pick(4)},
		{"--dyno", []string{"-d", "web.1"}, pick(0, 3)},
		{"--dyno-name", []string{"--dyno-name", "web.2"}, pick(1, 4, 5)},
		{"--process-type", []string{"-p", "web", "-s", "app"}, pick(0, 1, 3, 5)},
		{"--process-type worker", []string{"--process-type", "worker"}, pick(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := mustCLI(t, s.admin, append([]string{"logs", "web", "-n", s.ns}, tt.args...)...)
			if got := marked(out, "hist-"); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if strings.Contains(out, "\x1b[") {
				t.Error("colors in piped output")
			}
		})
	}

	t.Run("--json", func(t *testing.T) {
		out := mustCLI(t, s.admin, "logs", "web", "-n", s.ns, "--json")
		got := make([]cli.Line, 0, len(sent))
		for _, l := range marked(out, "hist-") {
			var jl cli.Line
			if err := json.Unmarshal([]byte(l), &jl); err != nil {
				t.Fatalf("not JSON: %q: %v", l, err)
			}
			got = append(got, jl)
		}
		if len(got) != len(sent) {
			t.Fatalf("%d JSON lines, want %d:\n%s", len(got), len(sent), out)
		}
		for i, l := range sent {
			src := l.source
			if src == "" {
				src = "app"
			}
			want := cli.Line{Time: l.at.UTC().Format("2006-01-02T15:04:05.000000-07:00"), Source: src, Dyno: l.proc, Message: l.text}
			if !reflect.DeepEqual(got[i], want) {
				t.Errorf("line %d = %+v, want %+v", i, got[i], want)
			}
		}
	})

	t.Run("--force-colors", func(t *testing.T) {
		out := mustCLI(t, s.admin, "logs", "web", "-n", s.ns, "--num", "1", "--force-colors")
		if !strings.Contains(out, "\x1b[") || !strings.Contains(out, "hist-5 GET /bye") {
			t.Errorf("no colored line: %q", out)
		}
	})

	t.Run("colors by themselves on a terminal, none with NO_COLOR", func(t *testing.T) {
		for _, noColor := range []bool{false, true} {
			out := onTerminal(t, noColor, "--kubeconfig", s.admin, "logs", "web", "-n", s.ns, "--num", "2")
			if !strings.Contains(out, "hist-5 GET /bye") {
				t.Fatalf("NO_COLOR set %v: no line on the terminal: %q", noColor, out)
			}
			if colored := strings.Contains(out, "\x1b["); colored == noColor {
				t.Errorf("NO_COLOR set %v: colors %v on a terminal: %q", noColor, colored, out)
			}
		}
	})

	t.Run("tail sees new lines from every router, Ctrl-C ends it cleanly", func(t *testing.T) {
		tail := startCLI(t, s.admin, "logs", "web", "-n", s.ns, "--tail", "--num", "2")
		waitOutput(t, tail, "hist-", pick(4, 5))
		// One line at a time: lines of different routers reach a tail in the order
		// each router forwards them, which across routers is not the send order.
		live := make([]line, 0, 6)
		for i := range 6 {
			l := line{proc: fmt.Sprintf("web.%d", i%2+1), text: fmt.Sprintf("live-%d", i), at: time.Now()}
			live = append(live, l)
			s.send(t, s.routers[i%2], token, l)
			waitOutput(t, tail, "live-", texts(live))
		}
		tail.interrupt(t, false)
	})

	t.Run("attributes in text and JSON", func(t *testing.T) {
		l := line{proc: "web.1", text: "attr-0 payment declined", at: time.Now(),
			sd: `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" severity_text="WARN"][log@32473 note="two words"][res@32473 service.name="checkout"]`}
		s.send(t, s.routers[1], token, l)
		out := mustCLI(t, s.admin, "logs", "web", "-n", s.ns)
		want := l.heroku() + ` [trace_id=4bf92f3577b34da6a3ce929d0e0e4736 severity_text=WARN note="two words" resource.service.name=checkout]`
		if got := marked(out, "attr-"); len(got) != 1 || got[0] != want {
			t.Errorf("text: %q, want %q", got, want)
		}
		out = mustCLI(t, s.admin, "logs", "web", "-n", s.ns, "--json")
		got := marked(out, "attr-")
		var jl cli.Line
		if len(got) != 1 || json.Unmarshal([]byte(got[0]), &jl) != nil {
			t.Fatalf("json: %q", got)
		}
		wantAttrs := cli.Attrs{{"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"}, {"severity_text", "WARN"},
			{"note", "two words"}, {"resource.service.name", "checkout"}}
		if !reflect.DeepEqual(jl.Attrs, wantAttrs) || jl.Message != l.text {
			t.Errorf("json line %s: attrs %v, want %v", got[0], jl.Attrs, wantAttrs)
		}
	})
}

// onTerminal runs the CLI with its stdout on a pseudo-terminal, as in a user's shell,
// and returns what it wrote there.
func onTerminal(t *testing.T, noColor bool, args ...string) string {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	defer func() { _ = ptmx.Close() }() // read to the end below
	cmd := exec.Command(bins["kubeplex"], args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "NO_COLOR=") })
	if noColor {
		cmd.Env = append(cmd.Env, "NO_COLOR=1")
	}
	var errOut strings.Builder
	cmd.Stdout, cmd.Stderr = tty, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = tty.Close() // the child holds its own copy; EOF (EIO) comes when it exits
	var out strings.Builder
	_, _ = io.Copy(&out, ptmx) // ends with EIO once the child's side is closed
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kubeplex %v on a terminal: %v\nstderr: %s", args, err, errOut.String())
	}
	return out.String()
}

// cliProc is a running CLI, for tails.
type cliProc struct {
	cmd      *exec.Cmd
	out, err *testenv.SyncBuffer
	done     chan error
}

func startCLI(t *testing.T, kubeconfig string, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{out: &testenv.SyncBuffer{}, err: &testenv.SyncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(bins["kubeplex"], append([]string{"--kubeconfig", kubeconfig}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // it may have exited already
		exit := <-p.done         // killed or exited: shown only with a failure
		if t.Failed() {
			t.Logf("kubeplex %s (exit: %v)\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), exit, p.out.String(), p.err.String())
		}
	})
	return p
}

// waitOutput waits until the lines of p's output that carry marker are exactly want.
func waitOutput(t *testing.T, p *cliProc, marker string, want []string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%d %q lines", len(want), marker), func() error {
		got := marked(p.out.String(), marker)
		if len(got) > len(want) || !slices.Equal(got, want[:len(got)]) {
			t.Fatalf("output went wrong:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(got) < len(want) {
			return fmt.Errorf("%d of %d lines", len(got), len(want))
		}
		return nil
	})
}

// interrupt sends Ctrl-C and expects a clean exit, with nothing on stderr unless
// notices are expected.
func (p *cliProc) interrupt(t *testing.T, notices bool) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Errorf("exit after Ctrl-C: %v; stderr %q", err, p.err.String())
		}
		if !notices && p.err.String() != "" {
			t.Errorf("stderr after Ctrl-C: %q", p.err.String())
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no exit after Ctrl-C")
	}
}

// TestLogsReconnect drops the tail's network path: the CLI says so on stderr, opens
// a new session and prints every line exactly once, including those sent while it
// was cut off, from both routers, and a late one (its time older than anything
// printed) that reached the other router meanwhile: the CLI resumes at the stream's
// cursor, each router's exact position. A second tail asked for no history and got
// lines from the first router only, so its position at the second router is the
// one the stream's tail event gave.
func TestLogsReconnect(t *testing.T) {
	s := newStack(t, 2)
	token := s.app(t, "web")
	proxy := newCutProxy(t, strings.TrimPrefix(s.routers[0], "http://"))
	proxy0 := newCutProxy(t, strings.TrimPrefix(s.routers[0], "http://"))
	var want, want0 []line
	var tail, tail0 *cliProc
	sendN := func(prefix string, n int, wait bool) {
		for i := range n {
			l := line{proc: fmt.Sprintf("web.%d", i%2+1), text: fmt.Sprintf("%s-%d", prefix, i), at: time.Now()}
			want = append(want, l)
			if tail0 != nil {
				want0 = append(want0, l)
			}
			s.send(t, s.routers[i%2], token, l)
			if wait {
				waitOutput(t, tail, "rc-", texts(want))
				waitOutput(t, tail0, "rc-", texts(want0))
			}
		}
	}
	sendN("rc-before", 4, false)
	first := want[0].at
	tail = startCLI(t, s.admin, "logs", "web", "-n", s.ns, "-t", "--router-url", proxy.URL())
	waitOutput(t, tail, "rc-", texts(want))
	tail0 = startCLI(t, s.admin, "logs", "web", "-n", s.ns, "-t", "--num", "0", "--router-url", proxy0.URL())
	probes := 0
	testenv.Eventually(t, "the history-less tail follows", func() error {
		if strings.Contains(tail0.out.String(), "probe-") {
			return nil
		}
		probes++ // until one reaches it: its tail began before that one
		s.send(t, s.routers[0], token, line{proc: "web.1", text: fmt.Sprint("probe-", probes), at: time.Now()})
		return errors.New("no probe line yet")
	})

	for _, p := range []*cutProxy{proxy, proxy0} {
		p.setRefuse(true)
		p.cut()
	}
	testenv.Eventually(t, "reconnect notices on stderr", func() error {
		for _, p := range []*cliProc{tail, tail0} {
			if !strings.Contains(p.err.String(), "kubeplex: tail stream dropped") {
				return fmt.Errorf("stderr %q", p.err.String())
			}
		}
		return nil
	})
	// While no stream is open: a late line at the other router, older than every
	// line printed, then current ones at both.
	late := line{proc: "web.2", text: "rc-late", at: first.Add(-time.Minute)}
	s.send(t, s.routers[1], token, late)
	want, want0 = append(want, late), append(want0, late)
	sendN("rc-gap", 4, false)
	for _, p := range []*cutProxy{proxy, proxy0} {
		p.setRefuse(false)
	}
	waitOutput(t, tail, "rc-", texts(want))
	waitOutput(t, tail0, "rc-", texts(want0))
	sendN("rc-after", 4, true)
	tail.interrupt(t, true)
	tail0.interrupt(t, true)
}

// TestLogsErrors: the failures a user meets get one clear line each.
func TestLogsErrors(t *testing.T) {
	s := newStack(t, 1, "--session-ttl", "2s")
	s.app(t, "web")
	ctx := ctxFor(t)

	t.Run("router unreachable", func(t *testing.T) {
		closed := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
		_, errOut, err := runCLI(t, s.admin, "logs", "web", "-n", s.ns, "--router-url", closed)
		if err == nil || !strings.HasPrefix(errOut, "error: router unreachable at "+closed+": ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("err %v, stderr %q", err, errOut)
		}
	})

	t.Run("session expired before the router saw it", func(t *testing.T) {
		proxy := newCutProxy(t, strings.TrimPrefix(s.routers[0], "http://"))
		release := proxy.holdNew()
		p := startCLI(t, s.admin, "logs", "web", "-n", s.ns, "--router-url", proxy.URL())
		// Hold the connection until the session's connect window has passed.
		testenv.Eventually(t, "the CLI's session expired", func() error {
			var l unstructured.UnstructuredList
			l.SetGroupVersionKind(cli.LogSessionGVK.GroupVersion().WithKind("LogSessionList"))
			if err := s.Client.List(ctx, &l, client.InNamespace(s.ns)); err != nil {
				return err
			}
			for _, o := range l.Items {
				exp, _, _ := unstructured.NestedString(o.Object, "status", "expiresAt")
				at, err := time.Parse(time.RFC3339, exp)
				if err == nil && time.Now().After(at.Add(time.Second)) {
					return nil
				}
			}
			return fmt.Errorf("%d sessions, none expired", len(l.Items))
		})
		release()
		select {
		case err := <-p.done:
			p.done <- err
			if err == nil || !strings.HasPrefix(p.err.String(), "error: session expired: ") {
				t.Errorf("err %v, stderr %q", err, p.err.String())
			}
		case <-time.After(testenv.WaitTimeout):
			t.Fatal("the CLI did not give up")
		}
	})

	t.Run("forbidden without create logsessions, and from another namespace", func(t *testing.T) {
		user := "reader-" + s.ns
		kc, _ := s.User(t, user)
		// May read apps, but not open sessions.
		s.bind(t, ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "app-reader", Namespace: s.ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{kubeplexv1alpha1.GroupVersion.Group},
				Resources: []string{"logapps"}, Verbs: []string{"get", "list"}}},
		}, user)
		// May open sessions in a namespace of its own only.
		other := s.ns + "-other"
		if err := s.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}); err != nil {
			t.Fatal(err)
		}
		s.bind(t, ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "session-opener", Namespace: other},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{kubeplexv1alpha1.GroupVersion.Group},
				Resources: []string{"logsessions", "logapps"}, Verbs: []string{"create", "get", "list"}}},
		}, user)
		want := `error: forbidden: User "` + user + `" cannot create resource "logsessions" in API group "kubeplex.io" in the namespace "` + s.ns + `"`
		testenv.Eventually(t, "the denial", func() error {
			_, errOut, err := runCLI(t, kc, "logs", "web", "-n", s.ns)
			if err == nil || strings.TrimSpace(errOut) != want {
				return fmt.Errorf("err %w, stderr %q, want %q", err, errOut, want)
			}
			return nil
		})
	})
}
