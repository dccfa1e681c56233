package cli_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chromedp/chromedp"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// startConsole runs `kubeplex console` and returns the URL it printed.
func startConsole(t *testing.T, s *stack) string {
	t.Helper()
	p := startCLI(t, s.admin, "console", "-n", s.ns, "--router-url", s.routers[0])
	var url string
	testenv.Eventually(t, "the console prints its URL", func() error {
		m := regexp.MustCompile(`kubeplex console: (http://127\.0\.0\.1:\d+/) `).FindStringSubmatch(p.out.String())
		if m == nil {
			return fmt.Errorf("stdout %q, stderr %q", p.out.String(), p.err.String())
		}
		url = m[1]
		return nil
	})
	return url
}

// TestConsoleRefusesOtherOrigins: only requests addressed to the console's own
// loopback name are answered, and nothing changes without the page's token.
func TestConsoleRefusesOtherOrigins(t *testing.T) {
	s := newStack(t, 1)
	s.app(t, "web")
	base := startConsole(t, s)
	do := func(method, path, host, origin, token, body string) int {
		req, err := http.NewRequest(method, base+strings.TrimPrefix(path, "/"), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if token != "" {
			req.Header.Set("X-Kubeplex-Token", token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // status only
		return resp.StatusCode
	}
	// The page carries the run's token.
	req, _ := http.NewRequest(http.MethodGet, base, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page := new(strings.Builder)
	_, _ = fmt.Fprint(page, readAll(t, resp))
	m := regexp.MustCompile(`name="kubeplex-token" content="([0-9a-f]{64})"`).FindStringSubmatch(page.String())
	if m == nil {
		t.Fatalf("no token in the page")
	}
	tok := m[1]
	drain := `{"App":"web","URL":"syslog://127.0.0.1:9","Name":"csrf"}`
	tests := []struct {
		name                                  string
		method, path, host, origin, tok, body string
		want                                  int
	}{
		{"rebound host name", "GET", "/api/apps", "evil.example:80", "", "", "", http.StatusMisdirectedRequest},
		{"page under another host", "GET", "/", "attacker.test", "", "", "", http.StatusMisdirectedRequest},
		{"post without token", "POST", "/api/drains", "", "", "", drain, http.StatusForbidden},
		{"post with a wrong token", "POST", "/api/drains", "", "", strings.Repeat("0", 64), drain, http.StatusForbidden},
		{"post from another origin", "POST", "/api/drains", "", "http://evil.example", tok, drain, http.StatusForbidden},
		{"session without token", "POST", "/api/sessions", "", "", "", `{"App":"web"}`, http.StatusForbidden},
		{"apps", "GET", "/api/apps", "", "", "", "", http.StatusOK},
	}
	for _, tt := range tests {
		if got := do(tt.method, tt.path, tt.host, tt.origin, tt.tok, tt.body); got != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.want)
		}
	}
	var d kubeplexv1alpha1.LogDrain
	if err := s.Client.Get(ctxFor(t), client.ObjectKey{Namespace: s.ns, Name: "csrf"}, &d); !apierrors.IsNotFound(err) {
		t.Errorf("a refused request made a drain: %v", err)
	}
	if got := do("POST", "/api/drains", "", base[:len(base)-1], tok, drain); got != http.StatusOK {
		t.Errorf("the page's own request: status %d", got)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer func() { _ = resp.Body.Close() }() // read fully below
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestConsole drives the console in chromium: apps and drains listed with health,
// a drain added through the form lands in the API server and shows as delivering,
// one removed goes, and "Open viewer" leads to a live viewer of the app.
func TestConsole(t *testing.T) {
	s := newStack(t, 1)
	token := s.app(t, "web")
	s.app(t, "api")
	sink := drainpeer.NewSyslogSink(t, nil)
	base := startConsole(t, s)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS(`tr[data-app="`+s.ns+`/web"]`)))

	add := func(app, url, name string) {
		t.Helper()
		run(t, ctx, choose(`#add select[name=app]`, s.ns+"/"+app),
			js(`document.querySelector('#add input[name=url]').value = `+jsQuote(url)+`;
				document.querySelector('#add input[name=name]').value = `+jsQuote(name)+`; undefined`),
			press(`#add button[type=submit]`))
		testenv.Eventually(t, "drain "+name+" in the API server", func() error {
			var d kubeplexv1alpha1.LogDrain
			if err := s.Client.Get(ctxFor(t), client.ObjectKey{Namespace: s.ns, Name: name}, &d); err != nil {
				return fmt.Errorf("%w; page says %q", err, eval[string](t, ctx, `document.getElementById('msg').textContent`))
			}
			if d.Spec.URL != url || d.Spec.AppRef.Name != app {
				t.Fatalf("drain %s spec %+v", name, d.Spec)
			}
			return nil
		})
		// The drain exists before the page has its answer; the page then clears the
		// form, so the next add waits for that, as a user would see it.
		want := "Drain " + s.ns + "/" + name + " added."
		testenv.Eventually(t, "the page confirms "+name, func() error {
			if got := eval[string](t, ctx, `document.getElementById('msg').textContent`); got != want {
				return fmt.Errorf("page says %q", got)
			}
			return nil
		})
		// And lists it: the refresh after an add is done.
		testenv.Eventually(t, "the page lists "+name, func() error {
			if !eval[bool](t, ctx, `!!document.querySelector('tr[data-drain="`+s.ns+`/`+name+`"]')`) {
				return fmt.Errorf("no row")
			}
			return nil
		})
	}
	add("web", "syslog://"+sink.Addr, "archive")
	add("web", "https://user:hunter2@127.0.0.1:1/ingest", "search")
	add("api", "syslog://127.0.0.1:9", "scratch")

	sentOne := false
	testenv.Eventually(t, "the console shows archive delivering with a count", func() error {
		// Until the drain delivered: the first line may beat the table that has it.
		if !sentOne || eval[string](t, ctx, `(document.querySelector('tr[data-drain="`+s.ns+`/archive"] td:nth-child(7)') || {}).textContent || ''`) == "0" {
			s.send(t, s.routers[0], token, line{proc: "web.1", text: "at=info method=GET path=/ status=200", at: time.Now()})
			sentOne = true
		}
		row := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('tr[data-drain="`+s.ns+`/archive"] td')).map(td => td.textContent)`)
		if len(row) < 9 || row[4] != "True" || row[5] != "True" || row[6] == "0" {
			return fmt.Errorf("archive row %q", row)
		}
		return nil
	})
	page := eval[string](t, ctx, `document.body.innerText`)
	if strings.Contains(page, "hunter2") {
		t.Error("the console shows a drain password")
	}
	if !strings.Contains(page, "https://xxxxx@127.0.0.1:1/ingest") {
		t.Errorf("the console does not show the redacted URL:\n%s", page)
	}
	screenshot(t, ctx, "console.png")

	// Remove takes two clicks; the page's refresh between them keeps the armed button.
	sel := `tr[data-drain="` + s.ns + `/scratch"] button.remove`
	run(t, ctx, press(sel))
	testenv.Eventually(t, "remove armed", func() error {
		if got := eval[string](t, ctx, `document.querySelector(`+jsQuote(sel)+`).textContent`); got != "Confirm remove" {
			return fmt.Errorf("button %q", got)
		}
		return nil
	})
	run(t, ctx, press(sel))
	testenv.Eventually(t, "scratch gone from the API server", func() error {
		var d kubeplexv1alpha1.LogDrain
		if err := s.Client.Get(ctxFor(t), client.ObjectKey{Namespace: s.ns, Name: "scratch"}, &d); !apierrors.IsNotFound(err) {
			return fmt.Errorf("get: %w", err)
		}
		return nil
	})

	// The viewer, through a session the console opened with the user's rights.
	run(t, ctx, press(`tr[data-app="`+s.ns+`/web"] button.view`))
	var viewer string
	testenv.Eventually(t, "a viewer link", func() error {
		viewer = eval[string](t, ctx, `(document.getElementById('viewer-link') || {}).href || ''`)
		if !strings.HasPrefix(viewer, s.routers[0]+"/sessions/") {
			return fmt.Errorf("link %q; page says %q", viewer, eval[string](t, ctx, `document.getElementById('msg').textContent`))
		}
		return nil
	})
	run(t, ctx, chromedp.Navigate(viewer))
	testenv.Eventually(t, "the app's lines in the viewer", func() error {
		if got := msgs(rows(t, ctx), "path=/ status=200"); len(got) == 0 {
			return fmt.Errorf("no rows yet")
		}
		return nil
	})
}

func jsQuote(s string) string { return fmt.Sprintf("%q", s) }

// press clicks the element as the page's own event (element.click()), not at screen
// coordinates: the console's tables grow and shrink as drains come and go, and a
// mouse click computed before such a shift lands beside the button (TestConsole
// lost clicks that way on a loaded machine).
func press(sel string) chromedp.Action[chromedp.Void] {
	return js(`(() => { const e = document.querySelector(` + jsQuote(sel) + `);
		if (!e) throw new Error('no element ` + strings.ReplaceAll(sel, "'", "") + `'); e.click(); })()`)
}
