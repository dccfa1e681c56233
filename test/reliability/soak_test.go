package reliability

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// soak is the size of a soak run: make soak runs the full one (an hour), make test
// a few seconds of the same thing.
type soak struct {
	apps, groups int
	batch        int
	tick         time.Duration
	duration     time.Duration
	// warm is the warm-up: RSS after it is the baseline; the goroutine and fd
	// baseline is taken at a quiet point right after it.
	warm time.Duration
	// A fault starts every faultEvery (±50%) and lasts faultFor (±50%).
	faultEvery, faultFor time.Duration
	sample               time.Duration
	// settle bounds the wait for every drain to catch up (a 404ing drain pauses up
	// to 30 s, a syslog drain reconnects after up to its backoff).
	settle time.Duration
}

func soakSize(t *testing.T) soak {
	if os.Getenv("KUBEPLEX_RELIABILITY") == "soak" {
		d := time.Hour
		if v := os.Getenv("SOAK_DURATION"); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				t.Fatalf("SOAK_DURATION: %v", err)
			}
		}
		return soak{apps: 100, groups: 10, batch: 5, tick: 250 * time.Millisecond, duration: d, warm: d / 6,
			faultEvery: min(3*time.Minute, d/20), faultFor: min(40*time.Second, d/60), sample: 5 * time.Second, settle: 5 * time.Minute}
	}
	return soak{apps: 20, groups: 4, batch: 5, tick: 100 * time.Millisecond, duration: 8 * time.Second, warm: 2 * time.Second,
		faultEvery: 700 * time.Millisecond, faultFor: 600 * time.Millisecond, sample: 200 * time.Millisecond, settle: 3 * time.Minute}
}

// soakFault is one kind of fault the soak injects into one group of apps.
type soakFault struct {
	name  string
	start func(g *soakGroup)
	stop  func(g *soakGroup)
}

// soakGroup is the receivers behind one group of apps: a proxy in front of the
// syslog sink, one in front of the syslog+TLS sink, and an HTTP (odd groups:
// HTTPS) receiver.
type soakGroup struct {
	syslog, tls *Proxy
	http        *CountingHTTP
	rate        int64 // bytes a second each proxy of this group forwards, roughly
}

var soakFaults = []soakFault{
	{"syslog receiver hangs up", func(g *soakGroup) { _ = g.syslog.Set(Hangup) }, func(g *soakGroup) { _ = g.syslog.Set(Pass) }},
	{"syslog+tls receiver hangs up", func(g *soakGroup) { _ = g.tls.Set(Hangup) }, func(g *soakGroup) { _ = g.tls.Set(Pass) }},
	{"syslog receiver at 10% speed", func(g *soakGroup) { g.syslog.Throttle(max(g.rate/10, 1)) }, func(g *soakGroup) { g.syslog.Throttle(0) }},
	{"syslog+tls receiver at 10% speed", func(g *soakGroup) { g.tls.Throttle(max(g.rate/10, 1)) }, func(g *soakGroup) { g.tls.Throttle(0) }},
	{"http 500", func(g *soakGroup) { g.http.Set(&HTTPFault{Code: 500}) }, func(g *soakGroup) { g.http.Set(nil) }},
	{"http 503 Retry-After 1", func(g *soakGroup) { g.http.Set(&HTTPFault{Code: 503, RetryAfter: 1}) }, func(g *soakGroup) { g.http.Set(nil) }},
	{"http 429", func(g *soakGroup) { g.http.Set(&HTTPFault{Code: 429}) }, func(g *soakGroup) { g.http.Set(nil) }},
	{"http 404", func(g *soakGroup) { g.http.Set(&HTTPFault{Code: 404}) }, func(g *soakGroup) { g.http.Set(nil) }},
	{"http hang-up after the body", func(g *soakGroup) { g.http.Set(&HTTPFault{HangUp: true}) }, func(g *soakGroup) { g.http.Set(nil) }},
}

// TestScenario11Soak: 100 apps × 3 drains (syslog, syslog+TLS, HTTP/HTTPS) for an
// hour with a fault every few minutes on one group of apps (receivers hanging up,
// reading at 10% speed, answering 500/503/429/404, hanging up after the body).
// Every line is delivered or announced (sent = delivered + L10 counts, per drain),
// no line reaches another app's drain, the router's RSS after warm-up grows < 10%,
// and its goroutines and fds at a quiet point at the end are those of a quiet point
// after warm-up. make test runs it for seconds with 20 apps and checks all but the
// RSS growth (seconds say nothing about it).
func TestScenario11Soak(t *testing.T) {
	sz := soakSize(t)
	full := os.Getenv("KUBEPLEX_RELIABILITY") == "soak"
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))
	t.Logf("soak: %d apps × 3 drains in %d groups, %d lines every %v per app, %v, seed %d", sz.apps, sz.groups, sz.batch, sz.tick, sz.duration, seed)

	books := NewBooks()
	ca := testenv.NewCA(t)
	cert := ca.Server(t)
	plain, err := NewCountingSyslog(books, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	secure, err := NewCountingSyslog(books, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(secure.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)

	perGroup := sz.apps / sz.groups
	groups := make([]*soakGroup, sz.groups)
	for i := range groups {
		g := &soakGroup{rate: int64(perGroup) * int64(sz.batch) * 120 * int64(time.Second/sz.tick)}
		if g.syslog, err = NewProxy(plain.Addr); err != nil {
			t.Fatal(err)
		}
		if g.tls, err = NewProxy(secure.Addr); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.syslog.Close)
		t.Cleanup(g.tls.Close)
		var c *tls.Certificate
		if i%2 == 1 {
			c = &cert
		}
		g.http = NewCountingHTTP(books, c)
		t.Cleanup(g.http.Close)
		groups[i] = g
	}
	caPEM := &routing.TLS{CAPEM: string(ca.PEM)}
	var tbl routing.Table
	fleet := &Fleet{Batch: sz.batch, Tick: sz.tick, Workers: 8}
	type drainRef struct {
		app   int
		id    string
		token string
		kind  string
	}
	var drains []drainRef
	for i := range sz.apps {
		app := fmt.Sprintf("a%03d", i)
		g := groups[i%sz.groups]
		tok := fmt.Sprintf("t.50a50a50-0000-4000-8000-%012d", i)
		a := routing.App{ID: "soak/" + app, Tokens: []routing.Token{{Token: tok, Source: "app"}}}
		for k, d := range []routing.Drain{
			{URL: "syslog://" + g.syslog.Addr},
			{URL: "syslog+tls://" + g.tls.Addr, TLS: caPEM},
			{URL: g.http.URL + "/logs"},
		} {
			d.ID = fmt.Sprintf("soak/%s-%d", app, k)
			d.Token = fmt.Sprintf("d.50a50a50-%04d-4000-8000-%012d", k, i)
			if strings.HasPrefix(d.URL, "https") {
				d.TLS = caPEM
			}
			a.Drains = append(a.Drains, d)
			books.Open(d.Token, app)
			drains = append(drains, drainRef{app: i, id: d.ID, token: d.Token, kind: strings.SplitN(d.URL, ":", 2)[0]})
		}
		tbl.Apps = append(tbl.Apps, a)
		fleet.Apps = append(fleet.Apps, app)
		fleet.Tokens = append(fleet.Tokens, tok)
	}
	debugAddr := testenv.FreeAddr(t)
	debug := "http://" + debugAddr
	r, proc := startRouterTable(t, tbl, "--debug-addr", debugAddr)
	pid := proc.Cmd.Process.Pid
	fleet.URL = r.base + "/logs"

	var (
		mu      sync.Mutex
		samples []ProcStat
	)
	sampleNow := func() ProcStat {
		st, err := ReadProc(pid)
		if err != nil {
			t.Fatalf("read /proc of the router: %v", err)
		}
		if err := GoStats(r.admin+"/metrics", &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// quiet waits until no drain has anything queued, then samples.
	quiet := func(what string) ProcStat {
		t.Helper()
		testenv.EventuallyWithin(t, what+": every queue empty", sz.settle, func() error {
			for id, d := range r.status(t).Drains {
				if d.Queued > 0 {
					return fmt.Errorf("%s has %d queued", id, d.Queued)
				}
			}
			return nil
		})
		st := sampleNow()
		t.Logf("%s: RSS %.1f MiB, heap in use %.1f MiB, %d goroutines, %d fds, %d threads", what, float64(st.RSS)/(1<<20), float64(st.HeapInuse)/(1<<20), st.Goroutines, st.FDs, st.Threads)
		if dir := os.Getenv("SOAK_PROFILE_DIR"); dir != "" {
			// A heap profile at each quiet point, to see what grew (go tool pprof -base).
			name := filepath.Join(dir, strings.ReplaceAll(what, " ", "-")+".heap.pb.gz")
			if b, err := fetch(debug + "/debug/pprof/heap?gc=1"); err != nil || os.WriteFile(name, []byte(b), 0o644) != nil {
				t.Logf("heap profile %s not written: %v", name, err)
			}
		}
		return st
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { fleet.Run(ctx) })
	start := time.Now()
	faults := map[string]int{}
	var baseline ProcStat
	sampleTick := time.NewTicker(sz.sample)
	defer sampleTick.Stop()
	nextFault := start.Add(jitter(rng, sz.faultEvery))
	var active *soakFault
	var activeGroup *soakGroup
	var faultEnd time.Time
	lastLog := start
	for time.Since(start) < sz.duration {
		now := time.Now()
		switch {
		case active != nil && now.After(faultEnd):
			active.stop(activeGroup)
			active = nil
			nextFault = now.Add(jitter(rng, sz.faultEvery))
		case active == nil && now.After(nextFault) && now.Sub(start) < sz.duration-sz.faultFor:
			f := soakFaults[rng.IntN(len(soakFaults))]
			active, activeGroup = &f, groups[rng.IntN(len(groups))]
			faultEnd = now.Add(jitter(rng, sz.faultFor))
			faults[f.name]++
			if full {
				t.Logf("+%v fault: %s", now.Sub(start).Round(time.Second), f.name)
			}
			f.start(activeGroup)
		}
		if baseline.At.IsZero() && now.Sub(start) >= sz.warm && active == nil {
			baseline = quiet("after warm-up")
			mu.Lock()
			samples = append(samples, baseline)
			mu.Unlock()
		}
		select {
		case <-sampleTick.C:
			st := sampleNow()
			mu.Lock()
			samples = append(samples, st)
			mu.Unlock()
			if full && time.Since(lastLog) > 5*time.Minute {
				lastLog = time.Now()
				t.Logf("+%v RSS %.1f MiB, heap in use %.1f MiB, %d goroutines, %d fds", time.Since(start).Round(time.Second), float64(st.RSS)/(1<<20), float64(st.HeapInuse)/(1<<20), st.Goroutines, st.FDs)
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	if active != nil {
		active.stop(activeGroup)
	}
	if baseline.At.IsZero() {
		t.Fatal("the run ended before a quiet point after warm-up")
	}
	end := quiet("at the end")
	stop()
	wg.Wait()

	// Every line accounted for, per drain.
	var lost, over, foreign, repeats, httpRepeats, delivered, announced, sent int
	var unbalanced []string
	balanced := func() error {
		unbalanced = unbalanced[:0]
		st := r.status(t)
		for _, d := range drains {
			bk := books.Get(d.token)
			if b := bk.Balance(fleet.Sent(d.app)); b != 0 || st.Drains[d.id].Dropped != bk.Announced {
				unbalanced = append(unbalanced, fmt.Sprintf("%s: sent %d, delivered %d, announced %d (status dropped %d)",
					d.id, fleet.Sent(d.app), bk.Delivered, bk.Announced, st.Drains[d.id].Dropped))
			}
		}
		if len(unbalanced) > 0 {
			return fmt.Errorf("%d drains unbalanced, first: %s", len(unbalanced), unbalanced[0])
		}
		return nil
	}
	err = Until(sz.settle, func() bool { return balanced() == nil })
	for _, d := range drains {
		bk := books.Get(d.token)
		b := bk.Balance(fleet.Sent(d.app))
		if b > 0 {
			lost += b
		} else {
			over -= b
		}
		foreign += bk.Foreign
		repeats += bk.Repeats
		if strings.HasPrefix(d.kind, "http") {
			httpRepeats += bk.Repeats
		}
		delivered += bk.Delivered
		announced += int(bk.Announced)
		sent += fleet.Sent(d.app)
	}
	p99, worst := fleet.Latency()
	t.Logf("faults: %v", faults)
	t.Logf("sent %d line deliveries (%d lines, %d posts refused, %d skipped while the app's previous one was out), delivered %d, announced %d, unaccounted %d, over-announced %d, "+
		"repeats %d (HTTP %d), foreign %d, unknown host %d, bad frames %d+%d; ingest POST p99 %v, worst %v",
		sent, sent/3, fleet.Refused(), fleet.Skipped(), delivered, announced, lost, over, repeats, httpRepeats, foreign, books.Get(Unknown).Other+books.Get(Unknown).Foreign, plain.Bad(), secure.Bad(), p99, worst)
	if err != nil {
		for _, u := range unbalanced[:min(len(unbalanced), 10)] {
			t.Log(u)
		}
		t.Errorf("not every line accounted for: %v", balanced())
	}
	if u := books.Get(Unknown); foreign != 0 || u.Delivered+u.Foreign+u.Other+int(u.Announced) != 0 {
		t.Errorf("%d lines reached another app's drain; under unknown drain tokens: %+v", foreign, u)
	}
	if httpRepeats != 0 {
		t.Errorf("%d lines arrived twice at HTTP drains under different frame ids", httpRepeats)
	}

	// Resources: goroutines and fds at the final quiet point against the one after
	// warm-up; RSS growth from the window after warm-up to the last one.
	t.Logf("goroutines %d → %d, fds %d → %d, threads %d → %d", baseline.Goroutines, end.Goroutines, baseline.FDs, end.FDs, baseline.Threads, end.Threads)
	slackG, slackF := baseline.Goroutines/50+5, 5
	if !full {
		// Seconds after the last fault an HTTP drain's pool may still hold the spare
		// connection a retry opened (two goroutines and an fd) until it idles out;
		// over an hour that settles, in seconds it need not.
		slackG, slackF = slackG+2*sz.apps, slackF+sz.apps
	}
	if end.Goroutines > baseline.Goroutines+slackG {
		t.Errorf("goroutines grew from %d to %d", baseline.Goroutines, end.Goroutines)
	}
	if end.FDs > baseline.FDs+slackF {
		t.Errorf("fds grew from %d to %d", baseline.FDs, end.FDs)
	}
	mu.Lock()
	defer mu.Unlock()
	window := sz.duration / 6
	var after, last, heapAfter, heapLast int64
	for _, s := range samples {
		switch at := s.At.Sub(start); {
		case at >= sz.warm && at < sz.warm+window:
			after, heapAfter = max(after, s.RSS), max(heapAfter, s.HeapInuse)
		case at >= sz.duration-window:
			last, heapLast = max(last, s.RSS), max(heapLast, s.HeapInuse)
		}
	}
	t.Logf("heap in use: peak %.1f MiB in the window after warm-up, %.1f MiB in the last: growth %+.1f%%",
		float64(heapAfter)/(1<<20), float64(heapLast)/(1<<20), 100*(float64(heapLast)/float64(max(heapAfter, 1))-1))
	if after == 0 || last == 0 {
		t.Fatalf("no RSS samples in the windows (%d samples)", len(samples))
	}
	growth := float64(last)/float64(after) - 1
	t.Logf("RSS: peak %.1f MiB in the window after warm-up, %.1f MiB in the last %v: growth %+.1f%%", float64(after)/(1<<20), float64(last)/(1<<20), window, 100*growth)
	if full && growth >= 0.10 {
		t.Errorf("RSS grew %.1f%% after warm-up (target < 10%%)", 100*growth)
	}
}

func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	return d/2 + time.Duration(rng.Int64N(int64(d)))
}
