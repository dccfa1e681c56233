package collector_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/internal/fakerouter"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

type sidecar struct {
	*proc
	syslog, http string
}

var startedRE = regexp.MustCompile(`msg="collector sidecar started".* trace_syslog=(\S*) trace_http=(\S*)`)

// startSidecar starts `collector sidecar` and waits until it says it is serving.
func startSidecar(t *testing.T, env []string) *sidecar {
	t.Helper()
	p := start(t, env, "sidecar")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(testenv.WaitTimeout)
	for {
		if m := startedRE.FindStringSubmatch(p.stderr.String()); m != nil {
			return &sidecar{proc: p, syslog: m[1], http: m[2]}
		}
		select {
		case <-p.Exited():
			t.Fatalf("sidecar exited before it served; stderr:\n%s", p.stderr.String())
		case <-deadline:
			t.Fatalf("sidecar did not start within %v; stderr:\n%s", testenv.WaitTimeout, p.stderr.String())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM, as the kubelet does once the workers have exited, and expects
// a clean exit after the flush.
func (s *sidecar) stop(t *testing.T) {
	t.Helper()
	if err := s.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st := s.wait(t, 60*time.Second); st.ExitCode() != 0 {
		t.Errorf("sidecar exit code %d; stderr:\n%s", st.ExitCode(), s.stderr.String())
	}
}

// TestWrapperHandsLinesToSidecar: in a pod, `collector run` passes its lines over the
// unix socket and the sidecar ships them, outliving the worker to flush.
func TestWrapperHandsLinesToSidecar(t *testing.T) {
	r := fakerouter.Start(t, token)
	dir := t.TempDir()
	sock := filepath.Join(dir, "collector.sock")
	sc := startSidecar(t, []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_SOCKET=" + sock, "KUBEPLEX_PROCESS_TYPE=web", "KUBEPLEX_POD_NAME=web-5d8f-x2k4q",
		"KUBEPLEX_TRACE_SYSLOG_ADDR=", "KUBEPLEX_TRACE_HTTP_ADDR="})
	// The wrapper has no router URL or token: in a pod only the sidecar talks to the router.
	wenv := []string{"KUBEPLEX_SOCKET=" + sock, "KUBEPLEX_PROCESS_TYPE=web", "KUBEPLEX_POD_NAME=web-5d8f-x2k4q"}
	const n = 2000
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; i=$((i+1)); done; echo oops >&2; exit 5`, n)
	w := start(t, wenv, "run", "--", "sh", "-c", script)
	if st := w.wait(t, 60*time.Second); st.ExitCode() != 5 {
		t.Fatalf("wrapper exit code %d, want 5; stderr: %s", st.ExitCode(), tail(w.stderr.String()))
	}
	sc.stop(t)
	recs := r.Records()
	got := appTexts(recs, "web.x2k4q", wire.PriorityInfo)
	if len(got) != n {
		t.Fatalf("got %d stdout lines via the sidecar, want %d", len(got), n)
	}
	for i, line := range got {
		if line != fmt.Sprintf("out %d", i) {
			t.Fatalf("line %d = %q", i, line)
		}
	}
	if got := appTexts(recs, "web.x2k4q", wire.PriorityError); !slices.Equal(got, []string{"oops"}) {
		t.Errorf("stderr lines = %q", got)
	}
	events := eventsOf(recs, "web.x2k4q")
	if !slices.ContainsFunc(events, func(s string) bool { return strings.HasPrefix(s, "Process exited with status 5") }) {
		t.Errorf("events = %q", events)
	}
	if d, l := fakerouter.Loss(recs); d+l != 0 {
		t.Errorf("loss notices: dropped %d lost %d", d, l)
	}
}

// TestWrapperWithoutSidecar: a wrapper whose sidecar is missing still runs the worker
// to the end, copies its output, and exits with its code.
func TestWrapperWithoutSidecar(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "absent.sock")
	w := start(t, []string{"KUBEPLEX_SOCKET=" + sock, "KUBEPLEX_PROCESS=web.1", "KUBEPLEX_FLUSH_TIMEOUT=500ms"},
		"run", "--", "sh", "-c", "echo still here; exit 4")
	if st := w.wait(t, 30*time.Second); st.ExitCode() != 4 {
		t.Fatalf("exit code %d, want 4", st.ExitCode())
	}
	if w.stdout.String() != "still here\n" {
		t.Errorf("stdout = %q", w.stdout.String())
	}
}

// TestTraceEndpoints: syslog over UDP and TCP (RFC 5424 and RFC 3164, both TCP
// framings) and POST /trace (text and logplex-1) all reach the app's stream.
func TestTraceEndpoints(t *testing.T) {
	r := fakerouter.Start(t, token)
	sc := startSidecar(t, []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_PROCESS=web.1", "KUBEPLEX_TRACE_SYSLOG_ADDR=127.0.0.1:0", "KUBEPLEX_TRACE_HTTP_ADDR=127.0.0.1:0"})
	if sc.syslog == "" || sc.http == "" {
		t.Fatalf("trace endpoints not announced: %q %q", sc.syslog, sc.http)
	}
	send := func(network, payload string) {
		t.Helper()
		c, err := net.Dial(network, sc.syslog)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	send("udp", "<134>1 2026-11-25T10:00:00.123456Z myhost myapp 42 - - udp rfc5424")
	send("udp", "<14>Nov 25 10:00:01 myhost myapp[42]: udp rfc3164")
	rec := "<134>1 2026-11-25T10:00:02Z h a - - - tcp octet counted"
	send("tcp", fmt.Sprintf("%d %s", len(rec), rec)+"<13>Nov 25 10:00:03 app: tcp rfc3164 newline\n<13>second newline line\n")
	post := func(ct string, body []byte) {
		t.Helper()
		resp, err := http.Post("http://"+sc.http+"/trace", ct, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // the status is the answer; the body is empty
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("POST /trace %s: %s", ct, resp.Status)
		}
	}
	post("text/plain", []byte("http one\nhttp two\n"))
	var body []byte
	for _, txt := range []string{"logplex one", "logplex two"} {
		body = wire.AppendFrame(body, wire.AppendRFC5424(nil, &wire.Message{Priority: 190, Time: time.Now(), AppName: "x", Text: []byte(txt)}))
	}
	post(wire.ContentType, body)
	// A refused body is answered, not swallowed.
	resp, err := http.Post("http://"+sc.http+"/trace", wire.ContentType, strings.NewReader("12 not a frame"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // only the status is checked
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed logplex-1 body: %s, want 400", resp.Status)
	}
	want := []string{"udp rfc5424", "udp rfc3164", "tcp octet counted", "tcp rfc3164 newline",
		"second newline line", "http one", "http two", "logplex one", "logplex two"}
	r.WaitFor(30*time.Second, "trace lines", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "web.1", 0)) >= len(want)
	})
	sc.stop(t)
	recs := r.Records()
	got := appTexts(recs, "web.1", 0)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("trace line %q missing; got %q", w, got)
		}
	}
	for _, rec := range recs {
		if string(rec.Text) == "udp rfc5424" && (rec.Priority != 134 || !rec.Time.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC))) {
			t.Errorf("rfc5424 trace kept priority %d time %v; want the sender's", rec.Priority, rec.Time)
		}
	}
}

// TestTraceRefusesNonLoopback: the endpoints carry no authentication, so only
// loopback addresses are accepted.
func TestTraceRefusesNonLoopback(t *testing.T) {
	r := fakerouter.Start(t, token)
	p := start(t, []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_TRACE_SYSLOG_ADDR=0.0.0.0:0"}, "sidecar")
	st := p.wait(t, 30*time.Second)
	if st.ExitCode() == 0 || !strings.Contains(p.stderr.String(), "only loopback addresses are allowed") {
		t.Errorf("exit %d, stderr %q", st.ExitCode(), p.stderr.String())
	}
}
