package http_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	httpdrain "github.com/kubeplex/kubeplex/router/drain/http"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// warnCounter counts WARN lines, as an operator's log volume would show them.
type warnCounter struct{ n atomic.Int64 }

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.n.Add(1)
	}
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

// TestRefusingDrainIsNotHammered: a drain that refuses every batch for good (4xx, or
// a redirect the router will not follow) has its lines dropped and counted; the L10
// notice that stands for them obeys the same backoff as data instead of being sent
// again at once (before: 22,619 POSTs in 10 s for a 404 drain), the log says so a
// bounded number of times, and once the drain accepts again the notice arrives with
// the exact count.
func TestRefusingDrainIsNotHammered(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 410, 301, 302, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			var accept atomic.Bool
			rv := drainpeer.NewHTTPReceiver(t, nil, func(_ int, r *drainpeer.Request) int {
				if accept.Load() {
					return 200
				}
				r.ReplyHeader.Set("Location", "http://127.0.0.1:1/elsewhere")
				return code
			})
			var warns warnCounter
			// The pause grows 100 ms → 200 → 400 → 800 → 1 s, each at least half that
			// with jitter: at most 1 + 1 + 2 + 3 + 4 = 11 POSTs can fit in 2 s.
			const window, most = 2 * time.Second, 11
			h := startWith(t, routing.Drain{URL: rv.URL}, httpdrain.Options{}, 100,
				drain.RunnerOptions{PauseMin: 100 * time.Millisecond, PauseMax: time.Second, LogEvery: time.Hour},
				slog.New(&warns))
			h.push(0, 10, 0)
			testenv.Until(t, "the batch refused and counted", func() bool { return h.stats.Dropped.Load() == 10 })
			first := time.Now()
			// Condition, not timing: the window ends when the clock says so, but the
			// count can only be lower on a slower machine, never higher.
			for time.Since(first) < window {
				time.Sleep(20 * time.Millisecond)
			}
			posts := len(rv.Requests())
			if posts > most {
				t.Fatalf("%d POSTs within %v of a drain answering %d, want at most %d", posts, window, code, most)
			}
			if n := warns.n.Load(); n > 1 {
				t.Errorf("%d WARN lines for one failure streak, want 1 (rate-limited)", n)
			}
			accept.Store(true)
			testenv.Until(t, "the L10 notice delivered once the drain accepts", func() bool {
				for _, m := range rv.Accepted() {
					if strings.Contains(string(m.Text), "Error L10") && strings.Contains(string(m.Text), "10 messages") {
						return true
					}
				}
				return false
			})
			// The runner books the notice once the POST has returned: poll for it.
			testenv.Until(t, "the announcement counted", func() bool { return h.stats.Announced.Load() == 10 })
		})
	}
}

// TestRetryAfterHonoured: a 503 or 429 with Retry-After is retried no sooner than
// it asked (a lower bound: a loaded machine only makes the gap longer), with the same
// frame id, although the drain's own backoff is a millisecond.
func TestRetryAfterHonoured(t *testing.T) {
	for _, code := range []int{503, 429} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			rv := drainpeer.NewHTTPReceiver(t, nil, func(n int, r *drainpeer.Request) int {
				if n == 0 {
					r.ReplyHeader.Set("Retry-After", "1")
					return code
				}
				return 200
			})
			h := start(t, routing.Drain{URL: rv.URL}, httpdrain.Options{RequestOptions: drain.RequestOptions{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}}, 100)
			h.push(0, 1, 0)
			rv.WaitAccepted(t, 1)
			reqs := rv.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(reqs))
			}
			if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
				t.Errorf("retried after %v, Retry-After asked for 1s", gap)
			}
			if reqs[0].Header.Get(wire.HeaderFrameID) != reqs[1].Header.Get(wire.HeaderFrameID) {
				t.Error("the retry has another frame id")
			}
		})
	}
}
