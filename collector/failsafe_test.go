package collector_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestWorkerRunsWhateverLoggingDoes: a collector whose logging cannot work still
// runs its worker, with the worker's exit status and output, and says loudly on
// stderr what is wrong (issue 11, hole 5). Before, a bad variable or a missing router
// URL exited 2 and the app never started.
func TestWorkerRunsWhateverLoggingDoes(t *testing.T) {
	closed := "http://" + testenv.FreeAddr(t) + "/logs" // nothing listens there
	tests := []struct {
		name string
		env  []string
		loud string // on stderr
	}{
		{"bad queue size", append(collectorEnv(closed, "web.1"), "KUBEPLEX_QUEUE_LINES=abc"), "LOGGING IS OFF"},
		{"no router url", []string{"KUBEPLEX_PROCESS=web.1"}, "LOGGING IS OFF"},
		{"unreadable token file", append(collectorEnv(closed, "web.1"), "KUBEPLEX_TOKEN_FILE=/nonexistent/token"), "LOGGING IS OFF"},
		{"router unreachable", append(collectorEnv(closed, "web.1"), "KUBEPLEX_FLUSH_TIMEOUT=1s"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := start(t, tt.env, "run", "--", "sh", "-c", "echo worker ran; exit 7")
			st := p.wait(t, 60*time.Second)
			if st.ExitCode() != 7 {
				t.Fatalf("exit code %d, want the worker's 7; stderr:\n%s", st.ExitCode(), p.stderr.String())
			}
			if got := p.stdout.String(); got != "worker ran\n" {
				t.Errorf("stdout %q, want the worker's output", got)
			}
			if tt.loud != "" && !strings.Contains(p.stderr.String(), tt.loud) {
				t.Errorf("stderr does not say %q:\n%s", tt.loud, p.stderr.String())
			}
		})
	}
}
