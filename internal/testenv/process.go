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

	exited chan struct{} // closed when Cmd.Wait returned
	err    error         // what Cmd.Wait returned, set before exited closes
}

// Start runs the binary at bin with args, and env added to the test's environment,
// until the test ends: then it gets SIGINT and, if it has not exited within 15 s,
// SIGKILL. Its output is logged if the test failed.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return StartCmd(t, cmd)
}

// StartCmd is Start for a prepared command: one with its own environment, or its
// stdout and stderr kept apart (Out then gets whatever the command leaves unset).
func StartCmd(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Name: filepath.Base(cmd.Path), Cmd: cmd, Out: &SyncBuffer{}, exited: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		exit := p.Stop(stopGrace)
		if t.Failed() || p.ShowOutput {
			t.Logf("---- %s output (exit: %v) ----\n%s", p.Name, exit, p.Out.String())
		}
	})
	return p
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Stop sends SIGINT and waits up to grace for the exit, then kills the process. It
// returns the exit error: nil only for a clean exit within grace. Once the process
// has exited, Stop (as the test cleanup calls it) only returns what Wait returned.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.Cmd.Process.Signal(os.Interrupt) // it may exit on its own meanwhile
	select {
	case <-p.exited:
		return p.err
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within %s of SIGINT: %w", p.Name, grace, p.err)
	}
}
