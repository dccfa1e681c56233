//go:build node

package node

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// herokuLine is a line of `kubeplex logs` text output: time source[dyno]: message.
var herokuLine = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) ([^\[\s]+)\[([^\]]+)\]: (.*)$`)

// cliLogs: `kubeplex logs APP --num 50` and `kubeplex logs --tail` as a user runs them
// against this node: the CLI binary with the node's kubeconfig, the router reached
// through `kubectl port-forward` of its Service (docs/cli.md), so the session is
// served by one router pod that gathers the other's history and tail through the
// peer calls it finds in the Service's EndpointSlices.
func (s *suite) cliLogs(t *testing.T) {
	cli := buildCLI(t)
	routerURL := portForward(t, "svc/"+release+"-router", 8080)

	// History: the newest 50 app lines of process type web are the end of d1 (300
	// numbered lines and "d1 done", written by case 2).
	cmd := exec.Command(cli, "logs", "shop", "-n", shopNS, "--num", "50", "-s", "app", "-p", "web", "--router-url", routerURL)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	outB, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubeplex logs --num 50: %v\n%s", err, exitStderr(err))
	}
	out := string(outB)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("kubeplex logs --num 50 printed %d lines, want 50:\n%s", len(lines), out)
	}
	msgs := make([]msg, 0, len(lines))
	// Each replica keeps its lines in the order they arrived, and the merge keeps that
	// order (docs/sessions.md, "The SSE cursor"). A worker's stdout and stderr are
	// stamped as each pipe is read and relayed apart, so a stderr line can arrive a
	// moment before an older stdout line: time order is checked per stream.
	prev := map[string]string{}
	for _, l := range lines {
		m := herokuLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not in Heroku's text form:\n%s", l, out)
		}
		stream := ""
		if sm := seqLine.FindStringSubmatch(m[4]); sm != nil {
			stream = sm[2]
		}
		if m[1] < prev[stream] { // fixed-width UTC times: string order is time order
			t.Errorf("line %q is older than the line of its stream before it (%s): history not merged by time", l, prev[stream])
		}
		prev[stream] = m[1]
		if m[2] != "app" || !strings.HasPrefix(m[3], "web.") {
			t.Errorf("line %q: source %q process %q, want app and web.*", l, m[2], m[3])
		}
		msgs = append(msgs, msg{Source: m[2], Proc: m[3], Text: m[4]})
	}
	if got := msgs[len(msgs)-1].Text; got != "d1 done" && msgs[len(msgs)-2].Text != "d1 done" {
		t.Errorf("history does not end with d1's last lines (%q):\n%s", got, out)
	}
	// The 49 numbered lines are the newest of 1..300: each stream in order, the last
	// one 300, none older than the window 49 lines can span.
	nums := map[string][]int{}
	for _, m := range msgs {
		if sm := seqLine.FindStringSubmatch(m.Text); sm != nil && sm[1] == "d1" {
			i, _ := strconv.Atoi(sm[3])
			nums[sm[2]] = append(nums[sm[2]], i)
		}
	}
	if n := len(nums["out"]) + len(nums["err"]); n != 49 {
		t.Errorf("%d numbered d1 lines, want 49 (50 minus d1 done):\n%s", n, out)
	}
	for stream, is := range nums {
		for k := 1; k < len(is); k++ {
			if is[k] <= is[k-1] {
				t.Errorf("std%s lines out of order: %v", stream, is)
				break
			}
		}
		for _, i := range is {
			if i < 300-60 {
				t.Errorf("std%s line %d is not among the newest lines: %v", stream, i, is)
				break
			}
		}
	}
	if e := nums["err"]; len(e) == 0 || e[len(e)-1] != 300 {
		t.Errorf("history lacks line 300 (stderr): %v", e)
	}

	// Tail: the history line printed first shows the stream is open; then a new pod
	// writes lines, and the tail shows them in order.
	tail := exec.Command(cli, "logs", "shop", "-n", shopNS, "--tail", "--num", "1", "-s", "app", "--router-url", routerURL)
	tail.Env = append(os.Environ(), "NO_COLOR=1")
	tout, terr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	tail.Stdout, tail.Stderr = tout, terr
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	recordPid(t, "cli-tail", tail.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- tail.Wait() }()
	t.Cleanup(func() {
		_ = tail.Process.Kill() // it may have exited already
		exit := <-done          // killed or exited: shown only with a failure
		if t.Failed() {
			t.Logf("kubeplex logs --tail (exit: %v) stdout:\n%s\nstderr:\n%s", exit, tout.String(), terr.String())
		}
	})
	eventually(t, 2*time.Minute, "the tail prints its one history line", func() error {
		if !strings.Contains(tout.String(), "\n") {
			return fmt.Errorf("no line yet; stderr %q", terr.String())
		}
		return nil
	})
	kubectlIn(t, workerPod(shopNS, "tailer", "shop", "-prefix", "t1", "-lines", "20", "-exit", "0"), "apply", "-f", "-")
	eventually(t, 2*time.Minute, "the tail shows the new pod's lines", func() error {
		var got []msg
		sc := bufio.NewScanner(strings.NewReader(tout.String()))
		for sc.Scan() {
			if m := herokuLine.FindStringSubmatch(sc.Text()); m != nil && strings.HasPrefix(m[3], "tailer.") {
				got = append(got, msg{Source: m[2], Proc: m[3], Text: m[4]})
			}
		}
		return checkSequence(got, "t1", 20)
	})
	if err := tail.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Errorf("kubeplex logs --tail after Ctrl-C: %v; stderr %q", err, terr.String())
		}
	case <-time.After(time.Minute):
		t.Error("kubeplex logs --tail did not exit within a minute of Ctrl-C")
	}
	kubectl(t, "delete", "pod", "-n", shopNS, "tailer", "--wait=false")
}

// buildCLI builds the kubeplex CLI for the test (removed when it ends).
func buildCLI(t *testing.T) string {
	t.Helper()
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/kubeplex")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return bins["kubeplex"]
}

func exitStderr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> `)

// portForward runs `kubectl port-forward` of target in the system namespace to a free
// local port until the test ends, and returns http://127.0.0.1:PORT.
func portForward(t *testing.T, target string, port int) string {
	t.Helper()
	pf := exec.Command(kubectlB, "port-forward", "-n", systemNS, "--address", "127.0.0.1", target, fmt.Sprintf(":%d", port))
	out := &testenv.SyncBuffer{}
	pf.Stdout, pf.Stderr = out, out
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	recordPid(t, "port-forward", pf.Process.Pid)
	t.Cleanup(func() {
		_ = pf.Process.Kill() // stops the forward
		_ = pf.Wait()         // killed: its exit status says nothing
	})
	var url string
	eventually(t, time.Minute, "kubectl port-forward "+target+" listens", func() error {
		m := forwarding.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("output so far: %q", out.String())
		}
		url = "http://127.0.0.1:" + m[1]
		return nil
	})
	return url
}
