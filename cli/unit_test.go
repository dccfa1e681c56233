package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"syslog+tls://logs.example.com:6514", "syslog+tls://logs.example.com:6514"},
		{"https://user:pw@logs.example.com/in", "https://xxxxx@logs.example.com/in"},
		{"https://logs.example.com/in?api_key=k1&tag=x", "https://logs.example.com/in?api_key=xxxxx&tag=x"},
		{"https://tok@logs.example.com/", "https://xxxxx@logs.example.com/"},
		{"::", "(unparsable URL)"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWithRouterBase(t *testing.T) {
	tests := []struct{ url, base, want, err string }{
		{"http://kubeplex-router.kubeplex-system:8080/sessions/abc.def", "", "http://kubeplex-router.kubeplex-system:8080/sessions/abc.def", ""},
		{"http://kubeplex-router.kubeplex-system:8080/sessions/abc.def", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/sessions/abc.def", ""},
		{"https://logs.example.com/kubeplex/sessions/x", "http://127.0.0.1:9000", "http://127.0.0.1:9000/sessions/x", ""},
		{"https://logs.example.com/other/x", "http://127.0.0.1:9000", "", "no /sessions/ path"},
		{"https://logs.example.com/sessions/x", "127.0.0.1:9000", "", "not an absolute URL"},
	}
	for _, tt := range tests {
		got, err := WithRouterBase(tt.url, tt.base)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("WithRouterBase(%q, %q) err = %v, want %q", tt.url, tt.base, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("WithRouterBase(%q, %q) = %q, %v; want %q", tt.url, tt.base, got, err, tt.want)
		}
	}
}

func jsonLine(t *testing.T, tm, dyno, msg string) []byte {
	t.Helper()
	b, err := json.Marshal(Line{Time: tm, Source: "app", Dyno: dyno, Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ts(s string) string { return "2026-11-25T10:00:" + s + "+00:00" }

// TestPrinterResumeSkipsPrinted: after a reconnect the new session's history
// overlaps what was printed; only new lines come out, including a line with the
// same time as the cursor and one that arrived late with an older time.
func TestPrinterResumeSkipsPrinted(t *testing.T) {
	var out, errOut bytes.Buffer
	p := &printer{out: bufio.NewWriter(&out), errOut: &errOut, seen: newSeenSet(4), started: ts("00.000000")}
	feed := func(lines ...[]byte) {
		for _, l := range lines {
			if err := p.line(l); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.flush(); err != nil {
			t.Fatal(err)
		}
	}
	feed(jsonLine(t, ts("01.000000"), "web.1", "a"), jsonLine(t, ts("02.000000"), "web.1", "b"),
		jsonLine(t, ts("03.000000"), "web.1", "c"), jsonLine(t, ts("04.000000"), "web.1", "d"),
		jsonLine(t, ts("04.000000"), "web.2", "e"))
	p.resume()
	// History of the new session: older than anything remembered (a), already
	// printed (b..e), a late line inside the window (c2), then new ones.
	feed(jsonLine(t, ts("01.000000"), "web.1", "a"), jsonLine(t, ts("02.000000"), "web.1", "b"),
		jsonLine(t, ts("03.000000"), "web.1", "c"), jsonLine(t, ts("03.500000"), "web.2", "c2"),
		jsonLine(t, ts("04.000000"), "web.1", "d"), jsonLine(t, ts("04.000000"), "web.2", "e"),
		jsonLine(t, ts("05.000000"), "web.1", "f"), jsonLine(t, ts("05.000000"), "web.1", "f"))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	got := make([]string, 0, len(lines))
	for _, l := range lines {
		got = append(got, l[strings.LastIndex(l, " ")+1:])
	}
	if want := "a b c d e c2 f f"; strings.Join(got, " ") != want {
		t.Errorf("printed %v, want %s", got, want)
	}
	if errOut.Len() != 0 {
		t.Errorf("gap notice although the history overlapped: %q", errOut.String())
	}

	// A reconnect whose history does not reach back says lines may be missing.
	p.resume()
	feed(jsonLine(t, ts("09.000000"), "web.1", "z"))
	if !strings.Contains(errOut.String(), "may be missing") {
		t.Errorf("no gap notice: %q", errOut.String())
	}
}

// TestPrinterResumeWithNothingPrinted: a tail asked for no history and printed
// nothing before the drop; the new session's history before the start stays out.
func TestPrinterResumeWithNothingPrinted(t *testing.T) {
	var out bytes.Buffer
	p := &printer{out: bufio.NewWriter(&out), errOut: &out, seen: newSeenSet(4), started: ts("05.000000")}
	p.resume()
	for _, l := range [][]byte{jsonLine(t, ts("01.000000"), "web.1", "old"), jsonLine(t, ts("06.000000"), "web.1", "new")} {
		if err := p.line(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != ts("06.000000")+" app[web.1]: new\n" {
		t.Errorf("printed %q", got)
	}
}

// TestDocsListEveryCommandAndFlag keeps docs/cli.md true: every command and flag
// the binary has is in it.
func TestDocsListEveryCommandAndFlag(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || (c.HasParent() && c.Parent().Name() == "completion") {
			return // cobra's own; docs/cli.md points at them as a group
		}
		if !bytes.Contains(doc, []byte("`"+c.CommandPath())) {
			t.Errorf("docs/cli.md lacks the command %q", c.CommandPath())
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !bytes.Contains(doc, []byte("--"+f.Name)) {
				t.Errorf("docs/cli.md lacks %s --%s", c.CommandPath(), f.Name)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := NewRootCommand("kubeplex", io.Discard, io.Discard)
	root.InitDefaultCompletionCmd()
	walk(root)
}

// TestPluginName: installed as kubectl-kubeplex, the help speaks of `kubectl kubeplex`.
func TestPluginName(t *testing.T) {
	for _, tt := range []struct{ argv0, want string }{
		{"/usr/local/bin/kubectl-kubeplex", "kubectl kubeplex logs APP"},
		{"kubeplex", "kubeplex logs APP"},
	} {
		var out bytes.Buffer
		if code := Main(t.Context(), tt.argv0, []string{"logs", "--help"}, &out, &out); code != 0 {
			t.Fatalf("exit %d: %s", code, out.String())
		}
		if !strings.Contains(out.String(), "\n  "+tt.want+" [flags]") {
			t.Errorf("%s: help lacks %q:\n%s", tt.argv0, tt.want, out.String())
		}
	}
}
