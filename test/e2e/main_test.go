// Package e2e runs kubeplex's real binaries against a real kube-apiserver and etcd
// (envtest) and real network peers on 127.0.0.1. It is part of `make test`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// bins holds the paths of the binaries built once for the whole package.
var bins map[string]string

func TestMain(m *testing.M) {
	var cleanup func()
	var err error
	bins, cleanup, err = testenv.Build("github.com/kubeplex/kubeplex/cmd/manager",
		"github.com/kubeplex/kubeplex/cmd/router", "github.com/kubeplex/kubeplex/cmd/collector")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// start runs one of the built binaries until the test ends; its output is printed if
// the test fails.
func start(t *testing.T, name string, args ...string) *testenv.Process {
	t.Helper()
	return testenv.Start(t, bins[name], nil, args...)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func contextFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func mustContainNone(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%d chars starting %q)", where, len(s), s[:min(4, len(s))])
		}
	}
}
