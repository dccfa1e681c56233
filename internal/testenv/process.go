package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
	"time"
)

// Build compiles the main packages pkgs (full import paths) into a new temporary
// directory, with cgo off as in the images, and returns each binary's path by the
// last element of its import path, and a function that removes the directory. It
// is for TestMain, so it reports errors instead of failing a test.
func Build(pkgs ...string) (bins map[string]string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "kubeplex-test-bin-")
	if err != nil {
		return nil, nil, fmt.Errorf("create binary directory: %w", err)
	}
	// Best effort: a leftover temporary directory harms nothing.
	cleanup = func() { _ = os.RemoveAll(dir) }
	bins = map[string]string{}
	for _, pkg := range pkgs {
		name := path.Base(pkg)
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("build %s: %w\n%s", pkg, err, b)
		}
		bins[name] = out
	}
	return bins, cleanup, nil
}

// stopGrace is how long a process has to exit after SIGINT before it is killed.
const stopGrace = 15 * time.Second

// Process is a binary started by Start. Its stdout and stderr both go to Out, for
// failure reports and for checking that no secret was ever logged.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Out  *SyncBuffer
	// ShowOutput logs Out at the end of the test even when it passed.
	ShowOutput bool
}

// Start runs the binary at bin with args, and env added to the test's environment,
// until the test ends: then it gets SIGINT and, if it has not exited within 15 s,
// SIGKILL. Its output is logged if the test failed.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: filepath.Base(bin), Out: &SyncBuffer{}}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Out, p.Out
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(os.Interrupt) // it may have exited already
		var exit error
		select {
		case exit = <-done:
		case <-time.After(stopGrace):
			_ = p.Cmd.Process.Kill()
			exit = <-done
		}
		if t.Failed() || p.ShowOutput {
			t.Logf("---- %s output (exit: %v) ----\n%s", p.Name, exit, p.Out.String())
		}
	})
	return p
}
