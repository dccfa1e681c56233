package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestDevstackTellsTheTruth runs the `make run` stack briefly and checks what a new
// user sees first: the console drain Delivering with delivered counts, conditions
// whose messages agree, the worker's lines printed, and a kubectl path that exists.
func TestDevstackTellsTheTruth(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, which builds the envtest assets")
	}
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/manager",
		"github.com/kubeplex/kubeplex/cmd/router", "github.com/kubeplex/kubeplex/cmd/collector", "github.com/kubeplex/kubeplex/cmd/kubeplex")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root) // devstack reads config/crd/bases, as `make run` runs it from the root
	out := &testenv.SyncBuffer{}
	o := options{binDir: filepath.Dir(bins["manager"]), stateDir: t.TempDir(), routerAddr: testenv.FreeAddr(t), adminAddr: testenv.FreeAddr(t),
		workerCmd: `i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo "tick $i"; sleep 0.1; done`, out: out}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Logf("devstack ended: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("devstack did not stop within a minute")
		}
		if t.Failed() {
			t.Logf("devstack output:\n%s", out.String())
			for _, n := range []string{"manager", "router", "collector"} {
				b, _ := os.ReadFile(filepath.Join(o.stateDir, n+".log"))
				t.Logf("---- %s.log ----\n%s", n, b)
			}
		}
	})

	testenv.Eventually(t, "the banner", func() error {
		select {
		case err := <-done:
			return fmt.Errorf("devstack ended: %w", err)
		default:
		}
		if !strings.Contains(out.String(), "kubeplex dev stack is up") {
			return fmt.Errorf("not up yet")
		}
		return nil
	})
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if !strings.Contains(out.String(), kubectl+" get logapps,logdrains -A") {
		t.Errorf("banner does not name the kubectl it built (%s):\n%s", kubectl, out.String())
	}
	if _, err := os.Stat(kubectl); err != nil {
		t.Errorf("the kubectl the banner names: %v", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(o.stateDir, "admin.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "console drain Ready and Delivering with delivered > 0", func() error {
		var d kubeplexv1alpha1.LogDrain
		if err := c.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: "console"}, &d); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition)
		deliv := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition)
		if ready == nil || deliv == nil || ready.Status != "True" || deliv.Status != "True" || d.Status.Delivered == 0 {
			return fmt.Errorf("Ready %+v, Delivering %+v, delivered %d", ready, deliv, d.Status.Delivered)
		}
		// The two must not contradict each other about the routing table.
		if strings.Contains(deliv.Message, "not in the routing table") {
			return fmt.Errorf("Delivering says %q while Ready says %q", deliv.Message, ready.Message)
		}
		return nil
	})
	if !strings.Contains(out.String(), "tick 1\n") {
		t.Errorf("the console drain printed no worker line:\n%s", out.String())
	}

	// The commands the banner prints work as printed: the tail shows the worker's
	// lines; the console serves its page.
	tailCmd := bannerCommand(t, out.String(), "tail the app:")
	tail := exec.CommandContext(ctx, tailCmd[0], tailCmd[1:]...)
	tailOut, tailErr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	tail.Stdout, tail.Stderr = tailOut, tailErr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tail.Process.Kill(); _ = tail.Wait() }) // a tail runs until stopped
	seen := ""
	testenv.Eventually(t, "the printed tail command shows new worker lines", func() error {
		m := tickLine.FindAllStringSubmatch(tailOut.String(), -1)
		if len(m) == 0 {
			return fmt.Errorf("no tick line yet; stderr %q", tailErr.String())
		}
		if seen == "" {
			seen = m[len(m)-1][1]
		}
		if m[len(m)-1][1] == seen { // a line written after the first one it showed
			return fmt.Errorf("only %s so far", seen)
		}
		return nil
	})
	conCmd := bannerCommand(t, out.String(), "web viewer:")
	con := exec.CommandContext(ctx, conCmd[0], conCmd[1:]...)
	conOut := &testenv.SyncBuffer{}
	con.Stdout, con.Stderr = conOut, conOut
	if err := con.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = con.Process.Kill(); _ = con.Wait() }) // serves until stopped
	var conURL string
	testenv.Eventually(t, "the printed console command prints its URL", func() error {
		if conURL = consoleURL.FindString(conOut.String()); conURL == "" {
			return fmt.Errorf("output %q", conOut.String())
		}
		return nil
	})
	testenv.WaitHTTP(t, conURL)
}

var (
	tickLine   = regexp.MustCompile(`app\[worker\.1\]: tick (\d+)`)
	consoleURL = regexp.MustCompile(`http://127\.0\.0\.1:\d+/\S*`)
)

// bannerCommand returns the command the banner prints after label, split into words.
func bannerCommand(t *testing.T, banner, label string) []string {
	t.Helper()
	for _, l := range strings.Split(banner, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), label); ok {
			words := strings.Fields(rest)
			if i := slices.Index(words, "(then"); i >= 0 {
				words = words[:i]
			}
			if len(words) == 0 {
				t.Fatalf("banner line %q names no command", l)
			}
			return words
		}
	}
	t.Fatalf("banner has no %q line:\n%s", label, banner)
	return nil
}
