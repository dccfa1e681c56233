package collector_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/internal/routertest"
	"github.com/kubeplex/kubeplex/internal/wire"
)

const token = "t.5f0c3c1e-9d4b-4b7e-a0b5-2f3b0c1d2e3f"

// TestRunShipsStdoutAndStderr is the walking skeleton: both streams reach the router
// as RFC 5424 records with the worker's process name, and the collector exits with the
// worker's code after flushing.
func TestRunShipsStdoutAndStderr(t *testing.T) {
	r := routertest.Start(t, token)
	p := start(t, collectorEnv(r.URL(), token, "web.1"), "run", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3")
	st := p.wait(t, 30*time.Second)
	if st.ExitCode() != 3 {
		t.Fatalf("exit code = %d, want 3; stderr:\n%s", st.ExitCode(), p.stderr.String())
	}
	// Run flushes before exiting, so everything is there once it has exited.
	recs := r.Records()
	var app []routertest.Record
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
		t.Fatalf("got %d app records %q, want %d", len(app), routertest.Texts(recs, "app"), len(want))
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
	events := routertest.Texts(recs, "kubeplex")
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
