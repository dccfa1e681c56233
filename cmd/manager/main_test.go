package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

var managerBin string

func TestMain(m *testing.M) {
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/manager")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	managerBin = bins["manager"]
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// cluster is the test's API server and the admin kubeconfig the manager runs with.
type cluster struct {
	*testenv.Cluster
	kubeconfig string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := testenv.NewCluster(t)
	return &cluster{Cluster: c, kubeconfig: c.AdminKubeconfig(t)}
}

// startManager runs the real binary with the flags the walking-skeleton test uses.
func startManager(t *testing.T, c *cluster, extra ...string) *testenv.Process {
	t.Helper()
	return startManagerEnv(t, c, nil, extra...)
}

// startManagerEnv is startManager with env added to the test's environment. The
// output is kept for the secret-leak checks; SHOW_MANAGER_LOG logs it even when the
// test passes.
func startManagerEnv(t *testing.T, c *cluster, env []string, extra ...string) *testenv.Process {
	t.Helper()
	args := append([]string{
		"--kubeconfig", c.kubeconfig, "--namespace", "kubeplex-system", "--routes-secret", "kubeplex-routes",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--leader-elect=false", "--webhook-port", "0",
	}, extra...)
	p := testenv.Start(t, managerBin, env, args...)
	p.ShowOutput = os.Getenv("SHOW_MANAGER_LOG") != ""
	return p
}

// managerStopGrace bounds a manager's clean shutdown: leader election released,
// caches and webhook server stopped.
const managerStopGrace = 30 * time.Second

// stopForLogs stops the manager and returns everything it wrote: once the process
// has exited its output is complete, so checks of what it never logged need no
// waiting for stragglers.
func stopForLogs(t *testing.T, p *testenv.Process) string {
	t.Helper()
	if err := p.Stop(managerStopGrace); err != nil {
		t.Errorf("manager did not exit cleanly on SIGINT: %v", err)
	}
	return p.Out.String()
}

func readyCondition(conds []metav1.Condition) (*metav1.Condition, error) {
	c := meta.FindStatusCondition(conds, kubeplexv1alpha1.ReadyCondition)
	if c == nil {
		return nil, fmt.Errorf("no Ready condition")
	}
	return c, nil
}

// TestWalkingSkeleton drives the binary as the e2e test does: a LogApp gets its token
// Secret, a LogDrain its drain token, both become Ready and land in the routing
// table; refused URLs say why; no secret reaches the manager's output.
func TestWalkingSkeleton(t *testing.T) {
	c := startCluster(t)
	ctx := context.Background()
	for _, ns := range []string{"kubeplex-system", "demo"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	manager := startManager(t, c, "--allow-cidrs", "127.0.0.0/8")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // only held so the drains' port is taken
	port := ln.Addr().(*net.TCPAddr).Port

	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "web"}}
	if err := c.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	const password = "Sup3r-s3cret-pa55"
	drains := []*kubeplexv1alpha1.LogDrain{
		drain("sink", fmt.Sprintf("syslog://127.0.0.1:%d", port)),
		drain("web-hook", fmt.Sprintf("http://user:%s@127.0.0.1:%d/logs", password, port)),
		drain("private", "syslog://10.0.0.1:514"),
		drain("apiserver", "https://"+c.Host()+"/api"),
	}
	for _, d := range drains {
		if err := c.Client.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
	}

	var token string
	testenv.Eventually(t, "LogApp Ready with token Secret", func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(app), app); err != nil {
			return err
		}
		cond, err := readyCondition(app.Status.Conditions)
		if err != nil {
			return err
		}
		if cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != app.Generation {
			return fmt.Errorf("Ready=%s (%s)", cond.Status, cond.Reason)
		}
		if app.Status.TokenSecretName != "web-kubeplex-token" {
			return fmt.Errorf("tokenSecretName %q", app.Status.TokenSecretName)
		}
		var s corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "demo", Name: app.Status.TokenSecretName}, &s); err != nil {
			return err
		}
		if !metav1.IsControlledBy(&s, app) {
			return fmt.Errorf("token secret not owned by the LogApp")
		}
		token = string(s.Data["token"])
		if !strings.HasPrefix(token, "t.") || len(token) != 38 {
			return fmt.Errorf("token %q is not t.<uuid>", token)
		}
		return nil
	})

	want := map[string]struct{ status, reason string }{
		"sink":      {"True", kubeplexv1alpha1.ReconciledReason},
		"web-hook":  {"True", kubeplexv1alpha1.ReconciledReason},
		"private":   {"False", kubeplexv1alpha1.URLNotAllowedReason},
		"apiserver": {"False", kubeplexv1alpha1.URLNotAllowedReason},
	}
	drainTokens := map[string]string{}
	for _, d := range drains {
		testenv.Eventually(t, "LogDrain "+d.Name+" condition", func() error {
			if err := c.Client.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
				return err
			}
			cond, err := readyCondition(d.Status.Conditions)
			if err != nil {
				return err
			}
			w := want[d.Name]
			if string(cond.Status) != w.status || cond.Reason != w.reason {
				return fmt.Errorf("Ready=%s reason %s (%s), want %s %s", cond.Status, cond.Reason, cond.Message, w.status, w.reason)
			}
			if !strings.HasPrefix(d.Status.Token, "d.") || len(d.Status.Token) != 38 {
				return fmt.Errorf("drain token %q is not d.<uuid>", d.Status.Token)
			}
			drainTokens[d.Name] = d.Status.Token
			return nil
		})
	}

	var table *routing.Table
	testenv.Eventually(t, "routing table with the app and its two valid drains", func() error {
		var s corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "kubeplex-system", Name: "kubeplex-routes"}, &s); err != nil {
			return err
		}
		tb, err := routing.Decode(s.Data[routing.SecretKey])
		if err != nil {
			return err
		}
		if len(tb.Apps) != 1 || tb.Apps[0].ID != "demo/web" || len(tb.Apps[0].Drains) != 2 {
			return fmt.Errorf("table %+v", tb.Apps)
		}
		table = tb
		return nil
	})
	a := table.Apps[0]
	if len(a.Tokens) != 2 || a.Tokens[0].SHA256 != routing.HashToken(token) || a.Tokens[0].Token != "" ||
		a.Tokens[0].Collector || !a.Tokens[1].Collector || a.Tokens[1].Token != "" {
		t.Errorf("app tokens %+v: want only the SHA-256 of the ingest token and of the collector credential", a.Tokens)
	}
	byID := map[string]routing.Drain{}
	for _, d := range a.Drains {
		byID[d.ID] = d
	}
	if d := byID["demo/sink"]; d.URL != fmt.Sprintf("syslog://127.0.0.1:%d", port) || d.Token != drainTokens["sink"] {
		t.Errorf("sink drain %+v", d)
	}
	if d := byID["demo/web-hook"]; d.URL != fmt.Sprintf("http://127.0.0.1:%d/logs", port) || d.Username != "user" || d.Password != password || len(d.HMACKey) != 64 {
		t.Errorf("web-hook drain: url %q user %q, password and signing key as expected: %v", d.URL, d.Username, d.Password == password && len(d.HMACKey) == 64)
	}

	logs := stopForLogs(t, manager)
	for what, secret := range map[string]string{"ingest token": token, "password": password, "hmac key": byID["demo/web-hook"].HMACKey} {
		if secret != "" && strings.Contains(logs, secret) {
			t.Errorf("manager output contains the %s", what)
		}
	}
	if !strings.Contains(logs, "routing table stored") {
		t.Errorf("manager output lacks the routing table log line; output:\n%s", logs)
	}
}

func drain(name, url string) *kubeplexv1alpha1.LogDrain {
	return &kubeplexv1alpha1.LogDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: name},
		Spec:       kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: url},
	}
}
