package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

const (
	ingestToken = "t.7e57a11a-0000-4000-8000-000000000001"
	drainToken  = "d.7e57a11a-0000-4000-8000-000000000002"
)

var routerBin, managerBin, collectorBin, workerBin string

func TestMain(m *testing.M) {
	logf.SetLogger(logr.Discard()) // envtest's own client logs nothing worth reading here
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/router", "github.com/kubeplex/kubeplex/cmd/manager",
		"github.com/kubeplex/kubeplex/cmd/collector", "github.com/kubeplex/kubeplex/test/node/worker")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	routerBin, managerBin, collectorBin, workerBin = bins["router"], bins["manager"], bins["collector"], bins["worker"]
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// long is the full-size run (make test-reliability); make test runs the short one.
var long = os.Getenv("KUBEPLEX_RELIABILITY") == "long"

type router struct {
	base, admin string
}

func startRouter(t *testing.T, drainURL string, extra ...string) router {
	t.Helper()
	tbl := routing.Table{Apps: []routing.App{{ID: "rel/app",
		Tokens: []routing.Token{{Token: ingestToken, Source: "app"}},
		Drains: []routing.Drain{{ID: "rel/drain", Token: drainToken, URL: drainURL}}}}}
	r, _ := startRouterTable(t, tbl, extra...)
	return r
}

// startRouterTable runs the router binary on tbl (a routes file) with free ingest
// and admin addresses.
func startRouterTable(t *testing.T, tbl routing.Table, extra ...string) (router, *testenv.Process) {
	t.Helper()
	b, err := json.Marshal(tbl)
	if err != nil {
		t.Fatal(err)
	}
	routes := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(routes, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, admin := testenv.FreeAddr(t), testenv.FreeAddr(t)
	args := append([]string{"--http-addr", addr, "--admin-addr", admin, "--routes", routes, "--allow-cidrs", "127.0.0.0/8"}, extra...)
	p := testenv.Start(t, routerBin, nil, args...)
	r := router{base: "http://" + addr, admin: "http://" + admin}
	testenv.WaitHTTP(t, r.base+"/readyz")
	return r, p
}

// countingSyslog starts a plain syslog sink booking into books, closed when the test
// ends.
func countingSyslog(t *testing.T, books *Books) *CountingSyslog {
	t.Helper()
	sink, err := NewCountingSyslog(books, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	return sink
}

// proxyTo starts a fault proxy in front of addr, closed when the test ends.
func proxyTo(t *testing.T, addr string) *Proxy {
	t.Helper()
	proxy, err := NewProxy(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	return proxy
}

// proxiedSyslog starts a counting syslog sink booking into books and returns the
// fault proxy in front of it, which the drain's URL names.
func proxiedSyslog(t *testing.T, books *Books) *Proxy {
	t.Helper()
	return proxyTo(t, countingSyslog(t, books).Addr)
}

// status reads the router's /status.
func (r router) status(t *testing.T) routing.RouterStatus {
	t.Helper()
	resp, err := http.Get(r.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	var st routing.RouterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func (r router) drainStatus(t *testing.T) routing.DrainStatus {
	t.Helper()
	return r.status(t).Drains["rel/drain"]
}

func texts(t *testing.T, s *drainpeer.SyslogSink) []string {
	t.Helper()
	ms := s.Messages()
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, string(m.Text))
	}
	return out
}

// TestScenario1RefusingDrain: a syslog drain refuses connections while lines keep
// coming. With a queue that holds the outage, nothing is lost; with a small queue B,
// the newest B (plus the batch the drain held when it started refusing) are
// delivered after recovery, and the exact number dropped is announced in-band (L10,
// ahead of the newest lines) and in the router's /status.
func TestScenario1RefusingDrain(t *testing.T) {
	cases := []struct {
		name     string
		queue, n int
		rate     int // lines per second
		outage   time.Duration
		lossless bool
	}{
		{name: "small queue", queue: 500, n: 3000, rate: 3000, outage: time.Second},
		{name: "queue holds the outage", queue: 20000, n: 6000, rate: 3000, outage: 2 * time.Second, lossless: true},
	}
	if long {
		cases = append(cases,
			struct {
				name     string
				queue, n int
				rate     int
				outage   time.Duration
				lossless bool
			}{name: "60 s at 5000/s, queue 300k", queue: 300000, n: 300000, rate: 5000, outage: 60 * time.Second, lossless: true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sink := drainpeer.NewSyslogSink(t, nil)
			proxy := proxyTo(t, sink.Addr)
			if err := proxy.Set(Refuse); err != nil {
				t.Fatal(err)
			}
			r := startRouter(t, "syslog://"+proxy.Addr, "--queue-size", fmt.Sprint(tc.queue))
			g := &Generator{URL: r.base + "/logs", Token: ingestToken, App: "app"}
			const batch = 100
			start := time.Now()
			for g.Sent() < tc.n {
				if _, err := g.Send(batch, batch); err != nil {
					t.Fatal(err)
				}
				// Pace to the rate: the outage lasts as long as the sending.
				if ahead := time.Duration(g.Sent())*time.Second/time.Duration(tc.rate) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
			if d := time.Since(start); d < tc.outage {
				time.Sleep(tc.outage - d)
			}
			if err := proxy.Set(Pass); err != nil {
				t.Fatal(err)
			}
			var acc Account
			if err := Until(90*time.Second, func() bool {
				acc = Tally("app", texts(t, sink))
				return acc.Balanced(tc.n) == nil
			}); err != nil {
				t.Fatalf("after recovery: %v", acc.Balanced(tc.n))
			}
			t.Logf("sent %d: delivered %d, announced %d, duplicates %d, other %d", tc.n, acc.Delivered, acc.Announced, acc.Duplicates, acc.Other)
			if acc.Duplicates != 0 {
				t.Errorf("%d duplicates on a syslog drain", acc.Duplicates)
			}
			if tc.lossless && acc.Announced != 0 {
				t.Errorf("%d dropped although the queue (%d) held the outage", acc.Announced, tc.queue)
			}
			// The newest B are among the delivered.
			for seq := tc.n - min(tc.queue, tc.n); seq < tc.n; seq++ {
				if acc.Seqs[seq] == 0 {
					t.Fatalf("line %d of the newest %d not delivered", seq, tc.queue)
				}
			}
			st := r.drainStatus(t)
			if st.Dropped != int64(acc.Announced) {
				t.Errorf("/status dropped %d, announced in-band %d", st.Dropped, acc.Announced)
			}
			if acc.Announced > 0 {
				all := texts(t, sink)
				l10 := slices.IndexFunc(all, func(s string) bool { return strings.HasPrefix(s, "Error L10") })
				newest := slices.Index(all, Line("app", tc.n-tc.queue))
				if l10 < 0 || newest < 0 || l10 > newest {
					t.Errorf("L10 notice at %d, first of the newest lines at %d: the notice must come first", l10, newest)
				}
			}
		})
	}
}

// TestScenario4HTTPAnswers: 500 and 503 are retried under the same frame id; a 4xx
// drops the batch and the drop is announced; a receiver that hangs up after reading a
// batch gets it again under the same frame id and it is counted once.
func TestScenario4HTTPAnswers(t *testing.T) {
	script := map[int]Answer{0: {Code: 500}, 1: {Code: 503}, 3: {Code: 400}, 5: {HangUp: true}}
	sink := NewHTTPSink(func(n int) Answer {
		if a, ok := script[n]; ok {
			return a
		}
		return Answer{Code: 200}
	})
	t.Cleanup(sink.Close)
	r := startRouter(t, sink.URL+"/logs")
	g := &Generator{URL: r.base + "/logs", Token: ingestToken, App: "app"}
	waitPosts := func(n int) {
		t.Helper()
		if err := Until(time.Minute, func() bool { return len(sink.Posts()) >= n }); err != nil {
			t.Fatalf("%d posts, want %d", len(sink.Posts()), n)
		}
	}
	// Phase A: 500, 503, then 200 for one batch.
	if _, err := g.Send(10, 10); err != nil {
		t.Fatal(err)
	}
	waitPosts(3)
	p := sink.Posts()
	if p[0].FrameID != p[1].FrameID || p[1].FrameID != p[2].FrameID {
		t.Errorf("retries of one batch under frame ids %q %q %q", p[0].FrameID, p[1].FrameID, p[2].FrameID)
	}
	// Phase B: a 400 drops the batch; the next one carries the L10 notice.
	if _, err := g.Send(5, 5); err != nil {
		t.Fatal(err)
	}
	waitPosts(4)
	if _, err := g.Send(5, 5); err != nil {
		t.Fatal(err)
	}
	waitPosts(5)
	// Phase C: a hang-up after the body was read; the retry is counted once.
	if _, err := g.Send(5, 5); err != nil {
		t.Fatal(err)
	}
	waitPosts(7)
	var acc Account
	if err := Until(time.Minute, func() bool {
		acc = Tally("app", sink.Accepted())
		return acc.Balanced(g.Sent()) == nil
	}); err != nil {
		t.Fatalf("%v", acc.Balanced(g.Sent()))
	}
	p = sink.Posts()
	if p[5].FrameID != p[6].FrameID {
		t.Errorf("the batch after a hang-up came back under frame id %q, was %q", p[6].FrameID, p[5].FrameID)
	}
	if d := sink.CrossFrameDuplicates(); d != 0 {
		t.Errorf("%d lines arrived under two frame ids", d)
	}
	if acc.Announced != 5 || acc.Delivered != 20 || acc.Duplicates != 0 {
		t.Errorf("delivered %d, announced %d, duplicates %d; want 20, 5, 0", acc.Delivered, acc.Announced, acc.Duplicates)
	}
	t.Logf("sent %d: delivered %d, announced %d, %d posts", g.Sent(), acc.Delivered, acc.Announced, len(p))
}
