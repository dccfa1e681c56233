package collector_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// bin is the real collector binary, built once for every process-level test.
var bin string

func TestMain(m *testing.M) {
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/collector")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = bins["collector"]
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// proc is a collector process under test, with its stdout (the worker's copy) and
// stderr (its own logs) kept apart.
type proc struct {
	*testenv.Process
	stdout, stderr *testenv.SyncBuffer
}

// start starts `collector ARGS...` with env added to a minimal environment, so no
// KUBEPLEX_ variable of the test's own environment leaks in.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// The sidecar's OTLP default (4318) is one port for the whole host here: off
	// unless a test asks for it.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KUBEPLEX_TRACE_OTLP_ADDR="}, env...)
	p := &proc{stdout: &testenv.SyncBuffer{}, stderr: &testenv.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	p.Process = testenv.StartCmd(t, cmd)
	return p
}

// wait waits for the collector to exit (failing the test after timeout) and returns
// its wait status.
func (p *proc) wait(t *testing.T, timeout time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(timeout):
		t.Fatalf("collector did not exit within %v; stderr:\n%s", timeout, p.stderr.String())
	}
	return p.Cmd.ProcessState
}

// collectorEnv is the environment of a collector that ships as process to url with
// the test token.
func collectorEnv(url, process string) []string {
	return []string{"KUBEPLEX_ROUTER_URL=" + url, "KUBEPLEX_TOKEN=" + token, "KUBEPLEX_PROCESS=" + process}
}
