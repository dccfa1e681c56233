//go:build node

package node

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// What hack/node/up.sh wrote into NODE_DIR/env.
var (
	nodeDir  string
	nodeIP   string
	kubectlB string
	helmB    string
	repo     string
	cl       client.Client
)

const (
	systemNS = "kubeplex-system"
	release  = "kubeplex"
)

func TestMain(m *testing.M) {
	for _, v := range []string{"KUBECONFIG", "KUBEPLEX_NODE_DIR", "KUBEPLEX_NODE_IP", "KUBECTL", "HELM"} {
		if os.Getenv(v) == "" {
			fmt.Fprintf(os.Stderr, "%s is not set: the node suite runs against the node of hack/node/up.sh; use make test-e2e\n", v)
			os.Exit(1)
		}
	}
	nodeDir, nodeIP = os.Getenv("KUBEPLEX_NODE_DIR"), os.Getenv("KUBEPLEX_NODE_IP")
	kubectlB, helmB = os.Getenv("KUBECTL"), os.Getenv("HELM")
	var err error
	if repo, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := kubeplexv1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if cl, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// run runs a command and returns its combined output; a failure fails the test.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, kubectlB, args...)
}

// runErrIn runs a command with stdin and returns its stdout.
func runErrIn(stdin, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w: %s", err, errb.String())
	}
	return out.String(), nil
}

// kubectlIn pipes stdin (a manifest) into kubectl.
func kubectlIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubectlB, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s\n---\n%s", strings.Join(args, " "), err, out, stdin)
	}
	return string(out)
}

func helm(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, helmB, args...)
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 250 ms until it returns nil or timeout passes, then
// fails with the last error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// recordPid writes a host process the suite started into NODE_DIR/pids, so that
// hack/node/down.sh stops it even when the suite itself is killed.
func recordPid(t *testing.T, name string, pid int) {
	t.Helper()
	f := filepath.Join(nodeDir, "pids", "suite-"+name+".pid")
	if err := os.WriteFile(f, []byte(fmt.Sprint(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(f) }) // down.sh would stop a dead pid harmlessly
}
