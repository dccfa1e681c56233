package collector_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/internal/fakerouter"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// criLog appends lines in the CRI logging format, as containerd writes them.
type criLog struct {
	t    *testing.T
	f    *os.File
	tick int
}

func openCRI(t *testing.T, path string) *criLog {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	})
	return &criLog{t: t, f: f}
}

func (c *criLog) write(stream, tag, content string) {
	c.t.Helper()
	c.tick++
	ts := time.Date(2026, 11, 25, 10, 0, 0, c.tick*1000, time.UTC).Format(time.RFC3339Nano)
	if _, err := fmt.Fprintf(c.f, "%s %s %s %s\n", ts, stream, tag, content); err != nil {
		c.t.Fatal(err)
	}
}

func criEnv(r *fakerouter.Router, root, state string) []string {
	return []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_MODE=CRITail", "KUBEPLEX_POD_LOG_DIR=" + root, "KUBEPLEX_POD_NAMESPACE=shop",
		"KUBEPLEX_POD_NAME=web-0", "KUBEPLEX_POD_UID=0b9c2f9e-1111-2222-3333-444455556666",
		"KUBEPLEX_CONTAINERS=web", "KUBEPLEX_STATE_DIR=" + state,
		"KUBEPLEX_TRACE_SYSLOG_ADDR=", "KUBEPLEX_TRACE_HTTP_ADDR="}
}

func containerDir(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, "shop_web-0_0b9c2f9e-1111-2222-3333-444455556666", "web")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestCRITailPartialsRotationRestart: partial (P) lines are re-joined and long ones
// split at 10,000 bytes; the tailer follows a kubelet rotation (rename, late writes to
// the old file, new file) and a container restart (1.log), losing and repeating nothing.
func TestCRITailPartialsRotationRestart(t *testing.T) {
	r := fakerouter.Start(t, token)
	root, state := t.TempDir(), t.TempDir()
	dir := containerDir(t, root)
	log0 := openCRI(t, filepath.Join(dir, "0.log"))
	log0.write("stdout", "F", "first")
	log0.write("stdout", "P", "par")
	log0.write("stdout", "P", "tial")
	log0.write("stdout", "F", " joined")
	log0.write("stderr", "F", "to stderr")
	log0.write("stdout", "F", "")
	long := strings.Repeat("x", 6000)
	log0.write("stdout", "P", long)
	log0.write("stdout", "P", long)
	log0.write("stdout", "P", long)
	log0.write("stdout", "F", "end")

	sc := startSidecar(t, criEnv(r, root, state))
	r.WaitFor(30*time.Second, "the first file", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "web.0", 0)) >= 6
	})
	log0.write("stdout", "F", "after start")
	// Rotation: the kubelet renames the file; the runtime writes a last line to the
	// old one before it reopens, then writes to the new 0.log.
	if err := os.Rename(filepath.Join(dir, "0.log"), filepath.Join(dir, "0.log.20261125-100000")); err != nil {
		t.Fatal(err)
	}
	log0.write("stdout", "F", "late in the rotated file")
	log0new := openCRI(t, filepath.Join(dir, "0.log"))
	log0new.write("stdout", "F", "in the new file")
	// A P line at the end of a file continues in the next write.
	log0new.write("stdout", "P", "split ")
	log0new.write("stdout", "F", "across writes")
	// The container restarts: the runtime starts 1.log.
	log1 := openCRI(t, filepath.Join(dir, "1.log"))
	log1.write("stderr", "F", "after restart")

	want := []string{"first", "partial joined", "to stderr", "", strings.Repeat("x", 10000), strings.Repeat("x", 8000) + "end",
		"after start", "late in the rotated file", "in the new file", "split across writes", "after restart"}
	r.WaitFor(30*time.Second, "every line", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "web.0", 0)) >= len(want)
	})
	sc.stop(t)
	recs := r.Records()
	if got := appTexts(recs, "web.0", 0); !slices.Equal(got, want) {
		t.Errorf("got %d lines, want %d:\n%s", len(got), len(want), diffLines(got, want))
	}
	for _, rec := range recs {
		txt := string(rec.Text)
		if (txt == "to stderr" || txt == "after restart") != (rec.Priority == wire.PriorityError) {
			t.Errorf("%q has priority %d", txt, rec.Priority)
		}
		if txt == "first" && !rec.Time.Equal(time.Date(2026, 11, 25, 10, 0, 0, 1000, time.UTC)) {
			t.Errorf("first line time %v, want the CRI timestamp", rec.Time)
		}
	}
}

func diffLines(got, want []string) string {
	var b strings.Builder
	for i := 0; i < max(len(got), len(want)); i++ {
		g, w := "<none>", "<none>"
		if i < len(got) {
			g = short(got[i])
		}
		if i < len(want) {
			w = short(want[i])
		}
		mark := "  "
		if g != w {
			mark = "!="
		}
		fmt.Fprintf(&b, "%s %3d got %q want %q\n", mark, i, g, w)
	}
	return b.String()
}

func short(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", s[:20], len(s))
	}
	return s
}

// TestCRITailKill9: a sidecar killed with SIGKILL in the middle of shipping, then
// started again, delivers every line exactly once: it resumes from the offset it saved
// after the router accepted each batch.
func TestCRITailKill9(t *testing.T) {
	r := fakerouter.Start(t, token)
	// A slow router keeps batches in flight, so the kill lands inside one.
	r.SetDelay(200 * time.Millisecond)
	root, state := t.TempDir(), t.TempDir()
	dir := containerDir(t, root)
	log0 := openCRI(t, filepath.Join(dir, "0.log"))
	const first, second = 3000, 500
	for i := 0; i < first; i++ {
		log0.write("stdout", "F", fmt.Sprintf("line %d", i))
	}
	sc := startSidecar(t, criEnv(r, root, state))
	r.WaitFor(60*time.Second, "some batches", func(recs []fakerouter.Record) bool {
		return len(recs) >= 1000
	})
	// Land the kill inside the next batch's wait, not between its answer and the
	// offset save (see docs/collector.md for that window).
	testenv.Until(t, "a batch held by the router", func() bool { return r.Held() > 0 })
	if err := sc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sc.wait(t, 30*time.Second)
	delivered := len(r.Records())
	if delivered >= first {
		t.Fatalf("all %d lines were delivered before the kill; the test proves nothing", delivered)
	}
	t.Logf("killed after %d lines were delivered", delivered)
	for i := first; i < first+second; i++ {
		log0.write("stdout", "F", fmt.Sprintf("line %d", i))
	}
	r.SetDelay(0)
	sc = startSidecar(t, criEnv(r, root, state))
	r.WaitFor(60*time.Second, "every line", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "web.0", 0)) >= first+second
	})
	sc.stop(t)
	got := appTexts(r.Records(), "web.0", 0)
	if len(got) != first+second {
		t.Fatalf("got %d lines after the restart, want %d (killed after %d)", len(got), first+second, delivered)
	}
	for i, line := range got {
		if line != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d = %q: lost or repeated around the kill (killed after %d)", i, line, delivered)
		}
	}
}
