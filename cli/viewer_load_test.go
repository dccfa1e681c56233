package cli_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestViewerLoad gives the viewer the load the issue names: 1500 lines of history,
// then a tail at about 1,000 lines/s. Every line is accounted for (shown, or
// announced by the router as dropped in an L11 notice), the page keeps its row cap,
// and the newest line is the last row. How long it took is logged, not asserted:
// this machine is shared.
func TestViewerLoad(t *testing.T) {
	s := newStack(t, 1)
	token := s.app(t, "web")
	ctx := browser(t)
	const history, tail, batch = 1500, 3000, 20
	at := time.Now().Add(-time.Minute)
	for i := 0; i < history; i += 100 {
		ls := make([]line, 100)
		for j := range ls {
			ls[j] = line{proc: fmt.Sprintf("web.%d", j%4+1), at: at.Add(time.Duration(i+j) * time.Microsecond),
				text: fmt.Sprintf("load-h%04d at=info method=GET path=/items/%d status=200 service=%dms", i+j, i+j, j%37)}
		}
		s.send(t, s.routers[0], token, ls...)
	}
	url := session(t, s, "web", s.routers[0])
	start := time.Now()
	run(t, ctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#log")))
	testenv.Eventually(t, "the history rendered", func() error {
		if last := lastRow(t, ctx); !strings.HasPrefix(last, fmt.Sprintf("load-h%04d ", history-1)) {
			return fmt.Errorf("last row %q", last)
		}
		return nil
	})
	t.Logf("1500 history lines: page open to last row %v (measured under load)", time.Since(start).Round(time.Millisecond))

	// About 1,000 lines/s: a batch of 20 every 20 ms, bounded in count.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	sendStart := time.Now()
	for i := 0; i < tail; i += batch {
		<-tick.C
		ls := make([]line, batch)
		for j := range ls {
			ls[j] = line{proc: fmt.Sprintf("web.%d", j%4+1), at: time.Now(),
				text: fmt.Sprintf("load-t%04d at=info method=POST path=/orders status=201", i+j)}
		}
		s.send(t, s.routers[0], token, ls...)
	}
	sent := time.Since(sendStart)
	testenv.Eventually(t, "the last tail line is the last row", func() error {
		if last := lastRow(t, ctx); !strings.HasPrefix(last, fmt.Sprintf("load-t%04d ", tail-1)) {
			return fmt.Errorf("last row %q", last)
		}
		return nil
	})
	shown := time.Since(sendStart)
	rows := eval[int](t, ctx, `document.querySelectorAll('#log .line').length`)
	if rows > 2000 {
		t.Errorf("%d rows in the page, more than its cap of 2000", rows)
	}
	// Lines received (the header's count, which includes the router's own lines)
	// plus lines the router announced as dropped cover everything sent.
	counts := eval[string](t, ctx, `document.getElementById('counts').textContent`)
	total, _ := strconv.Atoi(strings.Fields(counts)[0])
	dropped := 0
	for _, n := range eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#log .notice-L11')).map(e => e.textContent)`) {
		if m := regexp.MustCompile(`dropped (\d+) messages`).FindStringSubmatch(n); m != nil {
			d, _ := strconv.Atoi(m[1])
			dropped += d
		}
	}
	if total+dropped < history+tail {
		t.Errorf("%d lines received + %d announced dropped < %d sent", total, dropped, history+tail)
	}
	t.Logf("tail of %d lines sent in %v (%.0f lines/s); last one shown %v after the first was sent; "+
		"%d rows kept; %d dropped by the router (L11) (measured under load)", tail, sent.Round(time.Millisecond), float64(tail)/sent.Seconds(), shown.Round(time.Millisecond), rows, dropped)
}

func lastRow(t *testing.T, ctx context.Context) string {
	t.Helper()
	return eval[string](t, ctx, `(() => { const r = document.querySelectorAll('#log .line .msg'); return r.length ? r[r.length-1].textContent : ''; })()`)
}
