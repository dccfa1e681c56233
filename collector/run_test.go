package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/internal/fakerouter"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

const token = "t.5f0c3c1e-9d4b-4b7e-a0b5-2f3b0c1d2e3f"

// TestRunShipsStdoutAndStderr is the walking skeleton: both streams reach the router
// as RFC 5424 records with the worker's process name, and the collector exits with the
// worker's code after flushing.
func TestRunShipsStdoutAndStderr(t *testing.T) {
	r := fakerouter.Start(t, token)
	p := start(t, collectorEnv(r.URL(), "web.1"), "run", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3")
	st := p.wait(t, 30*time.Second)
	if st.ExitCode() != 3 {
		t.Fatalf("exit code = %d, want 3; stderr:\n%s", st.ExitCode(), p.stderr.String())
	}
	// Run flushes before exiting, so everything is there once it has exited.
	recs := r.Records()
	var app []fakerouter.Record
	for _, rec := range recs {
		if rec.ProcID != "web.1" {
			t.Errorf("record %q has PROCID %q, want web.1", rec.Text, rec.ProcID)
		}
		if rec.AppName == "app" {
			app = append(app, rec)
		}
	}
	want := map[string]uint8{"hello": wire.PriorityInfo, "oops": wire.PriorityError}
	if len(app) != len(want) {
		t.Fatalf("got %d app records %q, want %d", len(app), fakerouter.Texts(recs, "app"), len(want))
	}
	for _, rec := range app {
		pri, ok := want[string(rec.Text)]
		if !ok || rec.Priority != pri {
			t.Errorf("record %q priority %d; want one of %v", rec.Text, rec.Priority, want)
		}
		if rec.Time.IsZero() {
			t.Errorf("record %q has no timestamp", rec.Text)
		}
	}
	events := fakerouter.Texts(recs, "kubeplex")
	if !slices.ContainsFunc(events, func(s string) bool { return strings.HasPrefix(s, "Starting process with command `sh -c") }) ||
		!slices.ContainsFunc(events, func(s string) bool { return strings.HasPrefix(s, "Process exited with status 3 after ") }) {
		t.Errorf("process events = %q, want start and exit", events)
	}
	// kubectl logs keeps working: the worker's output is copied through.
	if got := p.stdout.String(); got != "hello\n" {
		t.Errorf("collector stdout = %q, want the worker's", got)
	}
	if !strings.Contains(p.stderr.String(), "oops\n") {
		t.Errorf("collector stderr = %q, want the worker's", p.stderr.String())
	}
}

// TestRunExitStatus: the collector ends the way its worker ended.
func TestRunExitStatus(t *testing.T) {
	r := fakerouter.Start(t, token)
	tests := []struct {
		name   string
		args   []string
		code   int            // wanted exit code, when signal is 0
		signal syscall.Signal // wanted terminating signal
		event  string         // prefix of the exit event
	}{
		{name: "success", args: []string{"true"}, code: 0, event: "Process exited with status 0 after "},
		{name: "failure", args: []string{"sh", "-c", "exit 42"}, code: 42, event: "Process exited with status 42 after "},
		{name: "killed", args: []string{"sh", "-c", "kill -KILL $$"}, signal: syscall.SIGKILL, event: "Process killed by SIGKILL after "},
		{name: "terminated", args: []string{"sh", "-c", "kill -TERM $$"}, signal: syscall.SIGTERM, event: "Process killed by SIGTERM after "},
		{name: "not found", args: []string{"/nonexistent/worker"}, code: 127, event: "Process failed to start: "},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := fmt.Sprintf("exit.%d", i)
			p := start(t, collectorEnv(r.URL(), proc), append([]string{"run", "--"}, tt.args...)...)
			st := p.wait(t, 30*time.Second)
			ws := st.Sys().(syscall.WaitStatus)
			if tt.signal != 0 {
				if !ws.Signaled() || ws.Signal() != tt.signal {
					t.Errorf("collector ended with %v, want killed by %v", st, tt.signal)
				}
			} else if ws.Signaled() || ws.ExitStatus() != tt.code {
				t.Errorf("collector ended with %v, want exit status %d", st, tt.code)
			}
			events := eventsOf(r.Records(), proc)
			if !slices.ContainsFunc(events, func(s string) bool { return strings.HasPrefix(s, tt.event) }) {
				t.Errorf("events %q: none starts with %q", events, tt.event)
			}
		})
	}
}

func eventsOf(recs []fakerouter.Record, proc string) []string {
	var out []string
	for _, r := range recs {
		if r.ProcID == proc && r.AppName == "kubeplex" {
			out = append(out, string(r.Text))
		}
	}
	return out
}

func appTexts(recs []fakerouter.Record, proc string, pri uint8) []string {
	var out []string
	for _, r := range recs {
		if r.ProcID == proc && r.AppName == "app" && (pri == 0 || r.Priority == pri) {
			out = append(out, string(r.Text))
		}
	}
	return out
}

// TestRunForwardsSignals: SIGTERM and SIGHUP sent to the collector reach the worker,
// which decides when to stop; its last lines are still shipped.
func TestRunForwardsSignals(t *testing.T) {
	r := fakerouter.Start(t, token)
	dir := t.TempDir()
	script := `trap 'echo got HUP' HUP; trap 'echo got TERM; exit 7' TERM; touch ` + dir + `/ready; while :; do sleep 0.05; done`
	p := start(t, collectorEnv(r.URL(), "sig.1"), "run", "--", "sh", "-c", script)
	waitFile(t, filepath.Join(dir, "ready"))
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(30*time.Second, "got HUP", func(recs []fakerouter.Record) bool {
		return slices.Contains(appTexts(recs, "sig.1", 0), "got HUP")
	})
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := p.wait(t, 30*time.Second)
	if st.ExitCode() != 7 {
		t.Errorf("exit code = %d, want the worker's 7", st.ExitCode())
	}
	recs := r.Records()
	if got := appTexts(recs, "sig.1", 0); !slices.Equal(got, []string{"got HUP", "got TERM"}) {
		t.Errorf("worker lines = %q", got)
	}
	events := eventsOf(recs, "sig.1")
	for _, want := range []string{"Stopping process with SIGHUP", "Stopping process with SIGTERM"} {
		if !slices.Contains(events, want) {
			t.Errorf("events %q lack %q", events, want)
		}
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	testenv.Eventually(t, path+" exists", func() error {
		_, err := os.Stat(path)
		return err
	})
}

// TestRunKeepsOrderPerStream: thousands of lines on both streams all arrive, each
// stream in its own order.
func TestRunKeepsOrderPerStream(t *testing.T) {
	r := fakerouter.Start(t, token)
	const n = 3000
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`, n)
	p := start(t, collectorEnv(r.URL(), "order.1"), "run", "--", "sh", "-c", script)
	if st := p.wait(t, 60*time.Second); st.ExitCode() != 0 {
		t.Fatalf("exit code %d; stderr tail: %s", st.ExitCode(), tail(p.stderr.String()))
	}
	recs := r.Records()
	for _, s := range []struct {
		prefix string
		pri    uint8
	}{{"out", wire.PriorityInfo}, {"err", wire.PriorityError}} {
		got := appTexts(recs, "order.1", s.pri)
		if len(got) != n {
			t.Fatalf("%s: got %d lines, want %d", s.prefix, len(got), n)
		}
		for i, line := range got {
			if want := fmt.Sprintf("%s %d", s.prefix, i); line != want {
				t.Fatalf("%s line %d = %q, want %q", s.prefix, i, line, want)
			}
		}
	}
	if d, l := fakerouter.Loss(recs); d+l != 0 {
		t.Errorf("loss notices with a live router: dropped %d lost %d", d, l)
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// TestRunSplitsLongLines: a 1 MiB line arrives whole, in 10,000-byte messages, and a
// last line without a newline is flushed at exit.
func TestRunSplitsLongLines(t *testing.T) {
	r := fakerouter.Start(t, token)
	dir := t.TempDir()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	file := filepath.Join(dir, "big")
	if err := os.WriteFile(file, append(append([]byte("short\n"), big...), []byte("\nno newline at the end")...), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, collectorEnv(r.URL(), "big.1"), "run", "--", "cat", file)
	if st := p.wait(t, 60*time.Second); st.ExitCode() != 0 {
		t.Fatalf("exit code %d", st.ExitCode())
	}
	got := appTexts(r.Records(), "big.1", 0)
	wantParts := (len(big) + 9999) / 10000
	if len(got) != 1+wantParts+1 {
		t.Fatalf("got %d messages, want %d", len(got), 2+wantParts)
	}
	if got[0] != "short" || got[len(got)-1] != "no newline at the end" {
		t.Errorf("first/last = %q / %q", got[0], got[len(got)-1])
	}
	var joined strings.Builder
	for _, part := range got[1 : len(got)-1] {
		if len(part) > 10000 {
			t.Errorf("message of %d bytes, over Logplex's 10,000", len(part))
		}
		joined.WriteString(part)
	}
	if joined.String() != string(big) {
		t.Errorf("the 1 MiB line did not arrive intact (%d bytes)", joined.Len())
	}
	// The copy to the collector's own stdout is exact.
	want, _ := os.ReadFile(file)
	if p.stdout.String() != string(want) {
		t.Errorf("stdout copy differs from the worker's output (%d vs %d bytes)", len(p.stdout.String()), len(want))
	}
}

// TestRunRouterDown: with the router refusing connections until batches were given
// up, the worker prints at full speed without waiting, and afterwards every line is
// either delivered or counted exactly in an L12 (queue overflow) or L13 (delivery
// failure) notice.
func TestRunRouterDown(t *testing.T) {
	r := fakerouter.Start(t, token)
	dir := t.TempDir()
	const n = 20000
	// The worker prints n lines, says it is done, then waits for the test to let it
	// exit, so the collector's final flush happens with the router back up.
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); done; touch %s/printed; while [ ! -e %s/exit ]; do sleep 0.05; done`, n, dir, dir)
	r.Down()
	env := append(collectorEnv(r.URL(), "down.1"),
		"KUBEPLEX_QUEUE_LINES=2000", "KUBEPLEX_ATTEMPTS=3", "KUBEPLEX_BACKOFF_MAX=1s", "KUBEPLEX_FLUSH_TIMEOUT=60s")
	p := start(t, env, "run", "--", "sh", "-c", script)
	// The worker finishes printing while the router is still down: its writes never
	// waited for the router.
	waitFile(t, filepath.Join(dir, "printed"))
	// The router stays down until the collector has given up on batches (L13) more
	// than once; the queue has overflowed (L12) by then, the worker having printed
	// ten times the queue bound.
	testenv.Until(t, "batches given up", func() bool {
		return strings.Count(p.stderr.String(), `msg="batch not delivered"`) >= 2
	})
	r.Up()
	if err := os.WriteFile(filepath.Join(dir, "exit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st := p.wait(t, 120*time.Second); st.ExitCode() != 0 {
		t.Fatalf("exit code %d; stderr: %s", st.ExitCode(), tail(p.stderr.String()))
	}
	recs := r.Records()
	got := appTexts(recs, "down.1", 0)
	dropped, lost := fakerouter.Loss(recs)
	// The process events (start, exit) also pass through the queue and may be among
	// the counted; they are the only non-app records the worker's queue holds.
	events := len(eventsOf(recs, "down.1")) - countNotices(recs)
	if dropped == 0 || lost == 0 {
		t.Errorf("dropped %d, lost %d: the test should provoke both L12 and L13", dropped, lost)
	}
	if len(got)+dropped+lost+events != n+2 {
		t.Errorf("delivered %d + dropped %d + lost %d + events %d != %d lines + 2 events",
			len(got), dropped, lost, events, n)
	}
	// Delivered lines are unique and in order.
	lastLine(t, got)
}

// lastLine checks that lines are "line N" with N rising, as a sender numbers them
// (none delivered twice or out of order), and returns the last N, -1 for none.
func lastLine(t *testing.T, lines []string) int {
	t.Helper()
	prev := -1
	for _, line := range lines {
		var i int
		if _, err := fmt.Sscanf(line, "line %d", &i); err != nil || i <= prev {
			t.Fatalf("line %q after line %d: duplicate, reordered or malformed", line, prev)
		}
		prev = i
	}
	return prev
}

func countNotices(recs []fakerouter.Record) int {
	n := 0
	for _, r := range recs {
		if r.AppName == "kubeplex" && (strings.HasPrefix(string(r.Text), "Error L12: ") || strings.HasPrefix(string(r.Text), "Error L13: ")) {
			n++
		}
	}
	return n
}

// TestRunRetriesServerErrors: 503 answers are retried under the same frame id, gzip
// bodies are accepted, and nothing is lost or repeated.
func TestRunRetriesServerErrors(t *testing.T) {
	r := fakerouter.Start(t, token)
	dir := t.TempDir()
	r.SetStatus(503)
	script := fmt.Sprintf(`for i in 1 2 3; do echo "retry $i"; done; touch %s/printed; while [ ! -e %s/exit ]; do sleep 0.05; done`, dir, dir)
	env := append(collectorEnv(r.URL(), "retry.1"), "KUBEPLEX_GZIP=true", "KUBEPLEX_ATTEMPTS=100", "KUBEPLEX_BACKOFF_MAX=200ms")
	p := start(t, env, "run", "--", "sh", "-c", script)
	waitFile(t, filepath.Join(dir, "printed"))
	testenv.Until(t, "batches retried after 503s", func() bool { return r.Failed() >= 3 })
	r.SetStatus(0)
	r.WaitFor(30*time.Second, "lines after 503s", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "retry.1", 0)) == 3
	})
	_ = os.WriteFile(filepath.Join(dir, "exit"), nil, 0o644)
	p.wait(t, 30*time.Second)
	recs := r.Records()
	if got := appTexts(recs, "retry.1", 0); !slices.Equal(got, []string{"retry 1", "retry 2", "retry 3"}) {
		t.Errorf("lines = %q", got)
	}
	if d, l := fakerouter.Loss(recs); d+l != 0 {
		t.Errorf("loss notices: dropped %d lost %d", d, l)
	}
	batches, gz, bad := r.Stats()
	if gz != batches || len(bad) != 0 {
		t.Errorf("batches %d, gzip %d, refused %q", batches, gz, bad)
	}
}

// TestRunRestartEvent: a second start of the same process in the same pod (same state
// directory) is reported as a restart with how the previous run ended.
func TestRunRestartEvent(t *testing.T) {
	r := fakerouter.Start(t, token)
	env := append(collectorEnv(r.URL(), "restart.1"), "KUBEPLEX_STATE_DIR="+t.TempDir())
	start(t, env, "run", "--", "sh", "-c", "exit 3").wait(t, 30*time.Second)
	start(t, env, "run", "--", "true").wait(t, 30*time.Second)
	events := eventsOf(r.Records(), "restart.1")
	want := "Process restarted (start 2); the previous run process exited with status 3 after "
	if !slices.ContainsFunc(events, func(s string) bool { return strings.HasPrefix(s, want) }) {
		t.Errorf("events %q lack %q", events, want)
	}
}

// TestRunRuntimeMetrics: with --runtime-metrics the wrapper writes log-runtime-metrics
// lines from its container's cgroup (here a fixture tree, v2 and v1) as
// kubeplex[<process>], until the worker exits; without it, none.
func TestRunRuntimeMetrics(t *testing.T) {
	for _, c := range []struct{ root, want string }{
		{"metrics/testdata/v2ns", "source=web.1 dyno=web-x sample#memory_total=1.00MB sample#memory_rss=0.50MB sample#memory_cache=0.50MB sample#memory_swap=0.00MB sample#load_avg_1m=0.00"},
		// Inside a cgroup namespace: the controllers' roots are the container's.
		{"metrics/testdata/v1ns", "source=web.1 dyno=web-x sample#memory_total=30.00MB sample#memory_rss=25.00MB sample#memory_cache=4.00MB sample#memory_swap=1.00MB sample#load_avg_1m=0.00"},
	} {
		r := fakerouter.Start(t, token)
		done := filepath.Join(t.TempDir(), "done")
		env := append(collectorEnv(r.URL(), "web.1"), "KUBEPLEX_POD_NAME=web-x", "HOSTNAME=web-x")
		p := start(t, env, "run", "--runtime-metrics", "50ms", "--cgroup-root", c.root, "--",
			"sh", "-c", "while [ ! -e "+done+" ]; do sleep 0.05; done")
		testenv.Until(t, "two metrics lines from "+c.root, func() bool {
			n := 0
			for _, s := range fakerouter.Texts(r.Records(), "kubeplex") {
				if strings.HasPrefix(s, "source=web.1 ") || strings.HasPrefix(s, "Warning: runtime metrics") {
					n++
				}
			}
			return n >= 2
		})
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		p.wait(t, 30*time.Second)
		events := fakerouter.Texts(r.Records(), "kubeplex")
		if n := countText(events, c.want); n < 2 {
			t.Errorf("%s: %d lines %q in %q", c.root, n, c.want, events)
		}
	}
}

func countText(texts []string, want string) int {
	n := 0
	for _, s := range texts {
		if s == want {
			n++
		}
	}
	return n
}
