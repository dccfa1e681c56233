package reliability

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestScenario3SlowDrain: one syslog drain of an app reads at 10% of the app's
// rate, beside two healthy drains of the same app (syslog and HTTP) and 100 other
// apps with a drain each. The app posts with a collector token, as its collector
// would. The healthy drains and the other apps lose nothing; the slow drain's loss
// is announced exactly; no POST /logs answer was held for room in a drain queue
// (kubeplex_router_ingest_held_total stays 0: a slow drain never holds its app's
// sender, docs/drains.md "Pushback"). Delivery latency of the healthy drains
// (receive time − the line's timestamp) and the ingest POST round trip are
// measured in a phase before the drain slows and in the slow phase, so the two can
// be compared within one run; they are reported, and asserted only as generous
// bounds a loaded machine keeps (healthy p99 < 5 s, POST p99 < 1 s: a POST held by
// the pushback would take up to 2 s). make test-reliability runs each phase for 60 s.
func TestScenario3SlowDrain(t *testing.T) {
	const others = 100
	phase, batch, tick := 2*time.Second, 20, 100*time.Millisecond
	if long {
		phase = time.Minute
	}
	books := NewBooks()
	sink := countingSyslog(t, books)
	proxy := proxiedSyslog(t, books) // the slow drain's
	web := NewCountingHTTP(books, nil)
	t.Cleanup(web.Close)

	slow, healthy1, healthy2 := "d.510e0000-0000-4000-8000-000000000001", "d.510e0000-0000-4000-8000-000000000002", "d.510e0000-0000-4000-8000-000000000003"
	tbl := routing.Table{Apps: []routing.App{{ID: "rel/app", Tokens: []routing.Token{{Token: ingestToken, Source: "app", Collector: true}},
		Drains: []routing.Drain{
			{ID: "rel/slow", Token: slow, URL: "syslog://" + proxy.Addr},
			{ID: "rel/healthy-syslog", Token: healthy1, URL: "syslog://" + sink.Addr},
			{ID: "rel/healthy-http", Token: healthy2, URL: web.URL + "/logs"},
		}}}}
	fleet := &Fleet{Batch: batch, Tick: tick, Workers: 8, Apps: []string{"app"}, Tokens: []string{ingestToken}}
	for _, tok := range []string{slow, healthy1, healthy2} {
		books.Open(tok, "app")
	}
	books.Track(healthy1)
	books.Track(healthy2)
	otherDrains := make([]string, 0, others)
	for i := range others {
		app, tok, dt := fmt.Sprintf("o%03d", i), fmt.Sprintf("t.510e0000-0001-4000-8000-%012d", i), fmt.Sprintf("d.510e0000-0002-4000-8000-%012d", i)
		tbl.Apps = append(tbl.Apps, routing.App{ID: "rel/" + app, Tokens: []routing.Token{{Token: tok, Source: "app"}},
			Drains: []routing.Drain{{ID: "rel/" + app, Token: dt, URL: "syslog://" + sink.Addr}}})
		books.Open(dt, app)
		otherDrains = append(otherDrains, dt)
		fleet.Apps = append(fleet.Apps, app)
		fleet.Tokens = append(fleet.Tokens, tok)
	}
	r, _ := startRouterTable(t, tbl)
	fleet.URL = r.base + "/logs"

	// Every app posts batch lines a tick; the slow drain gets a tenth of the app's
	// bytes a second.
	rec := len(fmt.Sprintf("<190>1 2026-12-01T10:00:00.000000+00:00 %s app web.1 - - %s", slow, Line("app", 100000)))
	slowRate := int64(rec+4) * int64(batch) * int64(time.Second/tick) / 10

	// Beside the POSTs, two no-op probes: GET /healthz on the router's ingest
	// listener (the router process's scheduling and the loopback, without the
	// handler) and GET on a no-op server inside this process (the client's own).
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(local.Close)
	type measure struct {
		h1, h2, ingestP99, ingestMax time.Duration
		post, healthz, local         Dist
		over, shared, sharedLocal    int
		handlerOver, handled         int // POSTs the router's handler took > 10 ms over, of all
	}
	handler := func() (over, all int) {
		le, err1 := Metric(r.admin+"/metrics", `kubeplex_router_ingest_request_seconds_bucket{le="0.01"}`)
		n, err2 := Metric(r.admin+"/metrics", "kubeplex_router_ingest_request_seconds_count")
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		return int(n - le), int(n)
	}
	run := func(throttle int64) measure {
		proxy.Throttle(throttle)
		fleet.ResetLatency()
		ctx, stop := context.WithTimeout(context.Background(), phase)
		defer stop()
		n1, n2 := len(books.Get(healthy1).Latencies), len(books.Get(healthy2).Latencies)
		o0, n0 := handler()
		var probes [2][]Sample
		var wg sync.WaitGroup
		for i, u := range []string{r.base + "/healthz", local.URL} {
			wg.Go(func() { probes[i] = Probe(ctx, u, 10*time.Millisecond) })
		}
		fleet.Run(ctx)
		wg.Wait()
		o1, n1h := handler()
		testenv.Until(t, "the healthy drains caught up", func() bool {
			return books.Get(healthy1).Delivered == fleet.Sent(0) && books.Get(healthy2).Delivered == fleet.Sent(0)
		})
		p99, worst := fleet.Latency()
		m := measure{h1: Percentile(books.Get(healthy1).Latencies[n1:], 99), h2: Percentile(books.Get(healthy2).Latencies[n2:], 99),
			ingestP99: p99, ingestMax: worst, post: Distribution(fleet.Samples()), healthz: Distribution(probes[0]), local: Distribution(probes[1])}
		m.over, m.shared = Overlapping(fleet.Samples(), probes[0], 10*time.Millisecond)
		_, m.sharedLocal = Overlapping(fleet.Samples(), probes[1], 10*time.Millisecond)
		m.handlerOver, m.handled = o1-o0, n1h-n0
		return m
	}
	before := run(0)
	during := run(slowRate)
	proxy.Throttle(0)

	// Everyone but the slow drain lost nothing and announced nothing; the slow one
	// is balanced once it reads at full speed again.
	for _, tok := range append([]string{healthy1, healthy2}, otherDrains...) {
		bk := books.Get(tok)
		sent := fleet.Sent(0)
		if tok != healthy1 && tok != healthy2 {
			sent = fleet.Sent(1 + indexOf(otherDrains, tok))
		}
		testenv.Until(t, "every healthy drain delivered", func() bool {
			bk = books.Get(tok)
			return bk.Delivered >= sent
		})
		if bk.Delivered != sent || bk.Announced != 0 || bk.Foreign != 0 {
			t.Errorf("healthy drain %s: sent %d, delivered %d, announced %d, foreign %d", tok, sent, bk.Delivered, bk.Announced, bk.Foreign)
		}
	}
	var sb Book
	if err := Until(3*time.Minute, func() bool {
		sb = books.Get(slow)
		return sb.Balance(fleet.Sent(0)) == 0 && r.status(t).Drains["rel/slow"].Dropped == sb.Announced
	}); err != nil {
		t.Errorf("slow drain: sent %d, delivered %d, announced %d, /status %+v", fleet.Sent(0), sb.Delivered, sb.Announced, r.status(t).Drains["rel/slow"])
	}
	if held, err := Metric(r.admin+"/metrics", "kubeplex_router_ingest_held_total"); err != nil || held != 0 {
		t.Errorf("POST /logs answers held for room: %v (err %v), want 0", held, err)
	}
	for _, m := range []measure{before, during} {
		if m.h1 > 5*time.Second || m.h2 > 5*time.Second || m.ingestP99 > time.Second {
			t.Errorf("latency beyond the generous bounds: healthy p99 syslog %v, http %v (bound 5 s); POST p99 %v (bound 1 s)",
				m.h1, m.h2, m.ingestP99)
		}
	}
	t.Logf("app: %d lines in 2 × %v; slow drain (%d B/s, 10%%): delivered %d, announced %d, repeats %d; 100 other apps: %d lines each, all delivered",
		fleet.Sent(0), phase, slowRate, sb.Delivered, sb.Announced, sb.Repeats, fleet.Sent(1))
	t.Logf("healthy p99 before the slowdown: syslog %v, http %v; during: syslog %v, http %v",
		before.h1.Round(time.Microsecond), before.h2.Round(time.Microsecond), during.h1.Round(time.Microsecond), during.h2.Round(time.Microsecond))
	t.Logf("ingest POST round trip before: p99 %v, worst %v; during: p99 %v, worst %v",
		before.ingestP99.Round(time.Microsecond), before.ingestMax.Round(time.Microsecond), during.ingestP99.Round(time.Microsecond), during.ingestMax.Round(time.Microsecond))
	for _, m := range []struct {
		name string
		m    measure
	}{{"before", before}, {"during", during}} {
		t.Logf("%s: POST /logs: %v", m.name, m.m.post)
		t.Logf("%s: GET /healthz (router, no-op): %v", m.name, m.m.healthz)
		t.Logf("%s: GET no-op in the test process: %v", m.name, m.m.local)
		t.Logf("%s: the router's handler took > 10 ms for %d of %d POSTs (kubeplex_router_ingest_request_seconds)", m.name, m.m.handlerOver, m.m.handled)
		t.Logf("%s: %d POSTs over 10 ms, %d of them while a /healthz probe was over 10 ms too, %d while the test process's no-op probe was",
			m.name, m.m.over, m.m.shared, m.m.sharedLocal)
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
