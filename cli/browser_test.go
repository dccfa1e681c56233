package cli_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubeplex/kubeplex/cli"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// browser starts Debian's chromium headless with a fresh profile and returns a tab.
// The network is closed: nothing in the flags may phone home. A missing chromium is
// a failure, not a skip: `.ci/run` installs it.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("KUBEPLEX_CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		t.Fatal("chromium not found: the browser tests need Debian's chromium (apt-get install -y chromium; .ci/run installs it) or KUBEPLEX_CHROMIUM=/path")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1360, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, testenv.WaitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates js in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, testenv.WaitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}

// js is an action that evaluates a statement for its effect.
func js(code string) chromedp.Action[chromedp.Void] { return chromedp.Evaluate[chromedp.Void](code) }

// choose sets a select's value and tells the page, as a user's pick would.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	return js(`(() => { const e = document.querySelector(` + strconv.Quote(sel) + `);
		if (!Array.from(e.options).some(o => o.value === ` + strconv.Quote(value) + `)) throw new Error('no option ` + value + `');
		e.value = ` + strconv.Quote(value) + `; e.dispatchEvent(new Event('change')); })()`)
}

// screenshot saves the page into the test's directory and, when
// KUBEPLEX_UPDATE_DOCS is set, into docs/ for the README.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", filepath.Join(dir, name))
	if os.Getenv("KUBEPLEX_UPDATE_DOCS") != "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// viewerRow is a row of the viewer as the page shows it.
type viewerRow struct {
	Source, Dyno, Msg, Notice string
	Hits                      int
}

const rowsJS = `Array.from(document.querySelectorAll('#log .line')).map(e => ({
	Source: e.dataset.source, Dyno: e.dataset.dyno, Notice: e.dataset.notice || '',
	Msg: e.querySelector('.msg').textContent, Hits: e.querySelectorAll('mark').length}))`

func rows(t *testing.T, ctx context.Context) []viewerRow {
	t.Helper()
	return eval[[]viewerRow](t, ctx, rowsJS)
}

func msgs(rs []viewerRow, marker string) []string {
	var out []string
	for _, r := range rs {
		if strings.Contains(r.Msg, marker) {
			out = append(out, r.Msg)
		}
	}
	return out
}

// waitRows waits until the rows carrying marker are exactly want, in order.
func waitRows(t *testing.T, ctx context.Context, marker string, want []string) {
	t.Helper()
	testenv.Eventually(t, fmt.Sprintf("%d %q rows in the viewer", len(want), marker), func() error {
		got := msgs(rows(t, ctx), marker)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			page := eval[string](t, ctx, `location.href + ' [' + ((document.getElementById('status') || {}).textContent || '') + '] ' +
				Array.from(document.querySelectorAll('.info')).map(e => e.textContent).join(' / ')`)
			return fmt.Errorf("rows\n%s\nwant\n%s\npage: %s", strings.Join(got, "\n"), strings.Join(want, "\n"), page)
		}
		return nil
	})
}

func messages(ls []line) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.text
	}
	return out
}

// TestViewer opens a real session URL in chromium: history from two routers in
// order, the tail, each filter, search highlighting, loss notices shown apart, and
// a reconnect after the stream is cut that repeats nothing.
func TestViewer(t *testing.T) {
	s := newStack(t, 2)
	token := s.app(t, "web")
	ctx := browser(t)
	t0 := time.Now().Add(-time.Minute)
	hist := make([]line, 0, 24)
	for i := range 24 {
		l := line{proc: []string{"web.1", "web.2", "worker.1"}[i%3],
			text: fmt.Sprintf("at=info method=GET path=/%s request_id=hist-%02d status=200 service=%dms",
				[]string{"cart", "pay", "home"}[i%3], i, 3+i*7%40),
			at: t0.Add(time.Duration(i) * time.Millisecond)}
		hist = append(hist, l)
		s.send(t, s.routers[i%2], token, l)
	}
	// Through a proxy, so the test can cut the stream; the page must keep working on
	// the address it was opened at.
	proxy := newCutProxy(t, strings.TrimPrefix(s.routers[0], "http://"))
	url := session(t, s, "web", proxy.URL())
	run(t, ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#log")))
	waitRows(t, ctx, "hist-", messages(hist))
	testenv.Eventually(t, "status live", func() error {
		st := eval[string](t, ctx, `document.getElementById('status').textContent`)
		if st != "live" {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})

	// Tail: new lines appear after the history, in order.
	var live []line
	for i := range 5 {
		l := line{proc: "web.1", text: fmt.Sprintf("at=info method=POST path=/orders request_id=live-%d status=201", i), at: time.Now()}
		live = append(live, l)
		s.send(t, s.routers[1], token, l)
		waitRows(t, ctx, "live-", messages(live))
	}

	t.Run("process filter hides the others", func(t *testing.T) {
		run(t, ctx, choose("#process", "worker.1"))
		var want []string
		for _, l := range hist {
			if l.proc == "worker.1" {
				want = append(want, l.text)
			}
		}
		waitRows(t, ctx, "-", want)
		run(t, ctx, choose("#process", "web.*"))
		for _, r := range rows(t, ctx) {
			if r.Notice == "" && !strings.HasPrefix(r.Dyno, "web.") {
				t.Errorf("web.* shows a %s row: %q", r.Dyno, r.Msg)
			}
		}
		run(t, ctx, choose("#process", ""))
	})

	t.Run("source filter", func(t *testing.T) {
		l := line{source: "kubeplex", proc: "web.2", text: "src-1 Process exited with status 0", at: time.Now()}
		s.send(t, s.routers[0], token, l)
		waitRows(t, ctx, "src-", []string{l.text})
		run(t, ctx, choose("#source", "kubeplex"))
		waitRows(t, ctx, "-", []string{l.text})
		run(t, ctx, choose("#source", ""))
		waitRows(t, ctx, "hist-", messages(hist))
	})

	t.Run("search highlights", func(t *testing.T) {
		run(t, ctx, chromedp.SendKeys(chromedp.CSS("#search"), "PAY"))
		testenv.Eventually(t, "marks on the /pay lines", func() error {
			n := 0
			for _, r := range rows(t, ctx) {
				if strings.Contains(r.Msg, "/pay") != (r.Hits == 1) {
					return fmt.Errorf("row %q has %d marks", r.Msg, r.Hits)
				}
				n += r.Hits
			}
			marks := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#log mark')).map(m => m.textContent)`)
			if n != 8 || len(marks) != 8 || marks[0] != "pay" {
				return fmt.Errorf("%d marks (%v), want 8 of \"pay\"", n, marks)
			}
			return nil
		})
	})

	t.Run("loss notices are shown apart", func(t *testing.T) {
		// A burst larger than the router's per-session buffer (200): the session
		// drops lines and says so in-band with Logplex's L11.
		burst := make([]line, 2000)
		for i := range burst {
			burst[i] = line{proc: "web.2", text: fmt.Sprintf("burst-%d", i), at: time.Now()}
		}
		s.send(t, s.routers[0], token, burst...)
		notices := func() map[string]string {
			return eval[map[string]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll('#log .notice')).map(e =>
				[e.dataset.notice, e.className + ' | ' + getComputedStyle(e).borderLeftColor + ' | ' + e.textContent]))`)
		}
		testenv.Eventually(t, "an L11 row", func() error {
			if got := notices(); !strings.Contains(got["L11"], "notice-L11") || !strings.Contains(got["L11"], "Tail buffer overflow") {
				return fmt.Errorf("notice rows %v", got)
			}
			return nil
		})
		// A collector's queue overflow notice travels as platform text (L12). It is
		// sent once the burst is through: sent with it, the overflow may drop it too.
		s.send(t, s.routers[0], token, line{source: "kubeplex", proc: "web.1", at: time.Now(),
			text: "Error L12 (Collector queue overflow): 7 messages dropped since 2026-12-01T00:00:00.000000+00:00."})
		testenv.Eventually(t, "L11 and L12 rows", func() error {
			got := notices()
			if !strings.Contains(got["L12"], "notice-L12") || got["L11"] == got["L12"] {
				return fmt.Errorf("notice rows %v", got)
			}
			return nil
		})
		run(t, ctx, js(`const q = document.getElementById('search'); q.value = ''; q.dispatchEvent(new Event('input')); undefined`))
	})

	t.Run("a cut stream reconnects without repeating or skipping a late line", func(t *testing.T) {
		before := len(msgs(rows(t, ctx), "live-"))
		proxy.cut()
		testenv.Eventually(t, "the page noticed", func() error {
			st := eval[string](t, ctx, `document.getElementById('status').textContent`)
			if st == "live" {
				return fmt.Errorf("status %q", st)
			}
			return nil
		})
		// A late line (its producer's clock an hour behind) and a current one, while
		// cut: both come once, the late one although it is older than every line
		// the page has.
		late := line{proc: "web.1", text: fmt.Sprintf("at=info method=GET path=/skewed request_id=live-late-%d status=200", before), at: time.Now().Add(-time.Hour)}
		l := line{proc: "web.1", text: fmt.Sprintf("at=info method=GET path=/orders request_id=live-%d status=200", before), at: time.Now()}
		live = append(live, late, l)
		s.send(t, s.routers[1], token, late, l)
		waitRows(t, ctx, "live-", messages(live))
		waitRows(t, ctx, "hist-", messages(hist))
	})

	t.Run("pause holds new lines until resume", func(t *testing.T) {
		run(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
		l := line{proc: "web.1", text: "at=info method=GET path=/paused request_id=live-p status=200", at: time.Now()}
		s.send(t, s.routers[0], token, l)
		testenv.Eventually(t, "the button counts the held line", func() error {
			if b := eval[string](t, ctx, `document.getElementById('pause').textContent`); b != "Resume (1 new)" {
				return fmt.Errorf("button %q", b)
			}
			return nil
		})
		if got := msgs(rows(t, ctx), "live-p"); len(got) != 0 {
			t.Fatalf("a paused page shows %q", got)
		}
		run(t, ctx, chromedp.Click(chromedp.CSS("#pause")))
		live = append(live, l)
		waitRows(t, ctx, "live-", messages(live))
	})

	t.Run("scrolling up stops following; jump to latest resumes", func(t *testing.T) {
		run(t, ctx, js(`document.getElementById('log').scrollTop = 0; undefined`))
		testenv.Eventually(t, "the jump button", func() error {
			if eval[bool](t, ctx, `document.getElementById('latest').hidden`) {
				return fmt.Errorf("hidden")
			}
			return nil
		})
		l := line{proc: "web.1", text: "at=info method=GET path=/late request_id=live-s status=200", at: time.Now()}
		live = append(live, l)
		s.send(t, s.routers[0], token, l)
		waitRows(t, ctx, "live-", messages(live))
		if top := eval[float64](t, ctx, `document.getElementById('log').scrollTop`); top != 0 {
			t.Errorf("the page scrolled to %v while the user read older lines", top)
		}
		run(t, ctx, chromedp.Click(chromedp.CSS("#latest")))
		testenv.Eventually(t, "at the bottom again", func() error {
			if !eval[bool](t, ctx, `(() => { const e = document.getElementById('log');
				return e.scrollHeight - e.scrollTop - e.clientHeight < 30 && document.getElementById('latest').hidden; })()`) {
				return fmt.Errorf("not at the bottom")
			}
			return nil
		})
	})

	t.Run("a line is text, never markup", func(t *testing.T) {
		l := line{proc: "web.1", at: time.Now(), text: `request_id=live-x <img src=x onerror="document.title='owned'"><b>bold</b>`}
		live = append(live, l)
		s.send(t, s.routers[0], token, l)
		waitRows(t, ctx, "live-", messages(live))
		if n := eval[int](t, ctx, `document.querySelectorAll('#log img, #log b').length`); n != 0 {
			t.Errorf("%d elements made from a log line", n)
		}
		if title := eval[string](t, ctx, `document.title`); title == "owned" {
			t.Error("a log line ran script")
		}
	})

	t.Run("attributes shown after the message", func(t *testing.T) {
		l := line{proc: "web.1", at: time.Now(), text: "at=warn request_id=live-attr payment declined",
			sd: `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" span_id="00f067aa0ba902b7"][res@32473 service.name="checkout"][log@32473 note="two words"]`}
		live = append(live, l)
		s.send(t, s.routers[1], token, l)
		waitRows(t, ctx, "live-", messages(live))
		want := `trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 resource.service.name=checkout note="two words"`
		got := eval[string](t, ctx, `(() => { const r = Array.from(document.querySelectorAll('#log .line')).find(e => e.querySelector('.msg').textContent.includes('live-attr'));
			return r && r.querySelector('.attrs') ? r.querySelector('.attrs').textContent : 'no attrs'; })()`)
		if got != want {
			t.Errorf("attributes %q, want %q", got, want)
		}
		if n := eval[int](t, ctx, `document.querySelectorAll('#log .attrs').length`); n != 1 {
			t.Errorf("%d rows with attributes, want 1", n)
		}
	})

	// One process, so the page shows its lines and the loss notices (which no
	// filter hides) rather than the burst.
	run(t, ctx, choose("#process", "web.1"), js(`document.getElementById('log').scrollTop = 1e9; undefined`))
	waitRows(t, ctx, "live-", messages(live))
	screenshot(t, ctx, "viewer.png")
}

// session asks for a tail session of app (all of its history) as the admin and
// returns its URL on base.
func session(t *testing.T, s *stack, app, base string) string {
	t.Helper()
	sess, err := cli.CreateSession(ctxFor(t), s.Client, cli.SessionRequest{Namespace: s.ns, App: app, Lines: cli.MaxLines, Tail: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := cli.WithRouterBase(sess.URL, base)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestViewerReconnectPastTTL: with a short session TTL, a viewer whose stream drops
// after its URL's connect window has passed reconnects (with the newest URL the
// router gave it) and shows what was sent while it was cut, repeating nothing.
func TestViewerReconnectPastTTL(t *testing.T) {
	const ttl = 3 * time.Second
	s := newStack(t, 1, "--session-ttl", ttl.String())
	token := s.app(t, "web")
	ctx := browser(t)
	first := line{proc: "web.1", text: "ttl-0 before", at: time.Now()}
	s.send(t, s.routers[0], token, first)
	proxy := newCutProxy(t, strings.TrimPrefix(s.routers[0], "http://"))
	created := time.Now()
	url := session(t, s, "web", proxy.URL())
	run(t, ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#log")))
	waitRows(t, ctx, "ttl-", []string{first.text})
	// Past the first URL's connect window (and that of the URL given at connect).
	testenv.Until(t, "the session URL's connect window is over", func() bool { return time.Since(created) > 2*ttl })
	proxy.cut()
	testenv.Eventually(t, "the page noticed", func() error {
		if st := eval[string](t, ctx, `document.getElementById('status').textContent`); st == "live" {
			return fmt.Errorf("status %q", st)
		}
		return nil
	})
	later := line{proc: "web.1", text: "ttl-1 while cut", at: time.Now()}
	s.send(t, s.routers[0], token, later)
	waitRows(t, ctx, "ttl-", []string{first.text, later.text})
}
