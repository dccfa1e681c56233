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

// TestEventStreamReading: the CLI reads the router's event stream itself. Line
// events are printed (their data is the JSON lines object, printed as it is with
// --json), the cursor is the newest id of any event (the tail event's included),
// session events and comments print nothing, and "end" ends the stream.
func TestEventStreamReading(t *testing.T) {
	stream := ": a comment\n" +
		"event: session\ndata: {\"url\":\"http://r/sessions/x\",\"expiresAt\":\"2026-11-25T10:01:00Z\"}\n\n" +
		"id: 1-a,b:1\nevent: line\ndata: " + string(jsonLine(t, ts("01.000000"), "web.1", "a")) + "\n\n" +
		"id:2-b,b:2\r\nevent:line\r\ndata:" + string(jsonLine(t, ts("02.000000"), "web.2", "b")) + "\r\n\r\n" +
		"id: 2-b,b:2,c:7\nevent: tail\ndata: {}\n\n" +
		"event: end\ndata: {}\n\n" +
		"id: 3,b:3\nevent: line\ndata: " + string(jsonLine(t, ts("03.000000"), "web.1", "after the end")) + "\n\n"
	for _, asJSON := range []bool{false, true} {
		var out, errOut bytes.Buffer
		tl := &tailer{p: &printer{out: bufio.NewWriter(&out), errOut: &errOut, json: asJSON}, errOut: &errOut}
		var ev sseEvent
		done := false
		for l := range strings.SplitAfterSeq(stream, "\n") {
			if done {
				break
			}
			var err error
			if done, err = tl.field(&ev, []byte(l)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tl.p.flush(); err != nil {
			t.Fatal(err)
		}
		want := ts("01.000000") + " app[web.1]: a\n" + ts("02.000000") + " app[web.2]: b\n"
		if asJSON {
			want = string(jsonLine(t, ts("01.000000"), "web.1", "a")) + "\n" + string(jsonLine(t, ts("02.000000"), "web.2", "b")) + "\n"
		}
		if !done || out.String() != want || errOut.Len() != 0 {
			t.Errorf("json %v: done %v, printed %q, stderr %q; want %q", asJSON, done, out.String(), errOut.String(), want)
		}
		if tl.cursor != "2-b,b:2,c:7" {
			t.Errorf("cursor %q, want the tail event's id", tl.cursor)
		}
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
