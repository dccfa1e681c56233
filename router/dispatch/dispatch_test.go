package dispatch_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drainpeer"
	"github.com/kubeplex/kubeplex/router/message"
)

const (
	tok1 = "t.11111111-1111-4111-8111-111111111111"
	tok2 = "t.22222222-2222-4222-8222-222222222222"
	dt1  = "d.aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	dt2  = "d.bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
)

func newDispatcher(t *testing.T) *dispatch.Dispatcher {
	t.Helper()
	d := dispatch.New(dispatch.Options{
		Dialer: &drain.Dialer{Policy: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		Logger: slog.New(slog.DiscardHandler),
		Router: "test",
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d
}

func apply(t *testing.T, d *dispatch.Dispatcher, apps ...routing.App) string {
	t.Helper()
	tbl := routing.Table{Apps: apps}
	tbl.Seal()
	if err := d.Apply(&tbl); err != nil {
		t.Fatal(err)
	}
	return tbl.Version
}

func publish(t *testing.T, d *dispatch.Dispatcher, token string, texts ...string) {
	t.Helper()
	rt, ok := d.ByToken(token)
	if !ok {
		t.Fatalf("token %s not routed", token[:6])
	}
	recs := make([][]byte, 0, len(texts))
	for _, s := range texts {
		recs = append(recs, message.AppendStrings(nil, 190, time.Now(), "app", "web.1", s))
	}
	rt.App.Publish(recs)
}

func texts(ms []wire.Message) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s[%s] %s", m.AppName, m.ProcID, m.Text))
	}
	return out
}

func TestLiveTableChanges(t *testing.T) {
	s1 := drainpeer.NewSyslogSink(t, nil)
	s2 := drainpeer.NewSyslogSink(t, nil)
	s3 := drainpeer.NewSyslogSink(t, nil)
	d := newDispatcher(t)
	if d.Ready() {
		t.Fatal("ready before a table")
	}
	app := routing.App{ID: "shop/web", History: 10,
		Tokens: []routing.Token{{Token: tok1, Source: "app"}},
		Drains: []routing.Drain{{ID: "shop/one", Token: dt1, URL: "syslog://" + s1.Addr}}}
	v1 := apply(t, d, app)
	if !d.Ready() || d.Version() != v1 {
		t.Fatalf("version %q, want %q", d.Version(), v1)
	}
	publish(t, d, tok1, "a")
	s1.WaitFor(t, 1)

	// Add a drain: the unchanged one keeps its connection. No replica announces the
	// change (the manager's leader does, once).
	app.Drains = append(app.Drains, routing.Drain{ID: "shop/two", Token: dt2, URL: "syslog://" + s2.Addr})
	apply(t, d, app)
	publish(t, d, tok1, "b")
	got1 := s1.WaitFor(t, 2)
	got2 := s2.WaitFor(t, 1)
	if want := []string{"app[web.1] a", "app[web.1] b"}; fmt.Sprint(texts(got1)) != fmt.Sprint(want) {
		t.Errorf("drain one got %q, want %q", texts(got1), want)
	}
	if want := []string{"app[web.1] b"}; fmt.Sprint(texts(got2)) != fmt.Sprint(want) {
		t.Errorf("drain two got %q, want %q", texts(got2), want)
	}
	if s1.Conns() != 1 {
		t.Errorf("unchanged drain reconnected: %d connections", s1.Conns())
	}

	// Remove drain one: drain two hears about it, drain one gets nothing more.
	app.Drains = app.Drains[1:]
	apply(t, d, app)
	publish(t, d, tok1, "c")
	got2 = s2.WaitFor(t, 2)
	if want := "app[web.1] c"; texts(got2)[1] != want {
		t.Errorf("drain two got %q, want %q second", texts(got2), want)
	}
	// Once drain one has stopped and its connection is read to the end, a wrongly
	// still-running drain one would have delivered "c".
	dispatch.WaitRemoved(d)
	s1.WaitClosed(t)
	if n := len(s1.Messages()); n != 2 {
		t.Errorf("removed drain got %d messages, want 2", n)
	}

	// Rotate the token: the old one stops working, history stays.
	app.Tokens = []routing.Token{{SHA256: routing.HashToken(tok2), Source: "app"}}
	apply(t, d, app)
	if _, ok := d.ByToken(tok1); ok {
		t.Error("rotated-out token still routes")
	}
	publish(t, d, tok2, "d")
	a, _ := d.App("shop/web")
	var hist []string
	a.History.Last(100, func(rec []byte) bool {
		m, _ := message.Decode(rec)
		hist = append(hist, string(m.Text))
		return true
	})
	if want := []string{"a", "b", "c", "d"}; fmt.Sprint(hist) != fmt.Sprint(want) {
		t.Errorf("history %q, want %q", hist, want)
	}

	// Move drain two to a new destination: no notice (same drain token), the queue
	// moves with it.
	app.Drains[0].URL = "syslog://" + s3.Addr
	apply(t, d, app)
	publish(t, d, tok2, "e")
	if got3 := s3.WaitFor(t, 1); texts(got3)[0] != "app[web.1] e" {
		t.Errorf("moved drain got %q", texts(got3))
	}

	// A new drain token for the same drain: the queue carried over stays open.
	const dt3 = "d.cccccccc-cccc-4ccc-8ccc-cccccccccccc"
	app.Drains[0].Token = dt3
	apply(t, d, app)
	publish(t, d, tok2, "f")
	dispatch.WaitRemoved(d) // a stop that wrongly closed the carried-over queue has run
	publish(t, d, tok2, "g")
	got3 := s3.WaitFor(t, 3)
	if want := []string{"app[web.1] e", "app[web.1] f", "app[web.1] g"}; fmt.Sprint(texts(got3)) != fmt.Sprint(want) {
		t.Errorf("re-tokened drain got %q, want %q", texts(got3), want)
	}
	if got3[2].Hostname != dt3 {
		t.Errorf("hostname %q, want the new token", got3[4].Hostname)
	}

	// Remove the app.
	apply(t, d)
	if _, ok := d.ByToken(tok2); ok {
		t.Error("removed app's token still routes")
	}
	if _, ok := d.App("shop/web"); ok {
		t.Error("removed app still present")
	}
}

func TestTokenNotAfter(t *testing.T) {
	d := newDispatcher(t)
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	apply(t, d, routing.App{ID: "a/b", Tokens: []routing.Token{
		{Token: tok1, Source: "app", NotAfter: &past},
		{Token: tok2, Source: "app", NotAfter: &future},
	}})
	if _, ok := d.ByToken(tok1); ok {
		t.Error("expired token routes")
	}
	if _, ok := d.ByToken(tok2); !ok {
		t.Error("token in its grace period refused")
	}
}

func TestSourceRuleAndHosts(t *testing.T) {
	d := newDispatcher(t)
	apply(t, d, routing.App{ID: "a/b", Hosts: []string{"Shop.Example.com"},
		Tokens: []routing.Token{{Token: tok1, Source: "app", AllowedSources: []string{"papertrail"}},
			{Token: tok2, Source: "app", Collector: true}}})
	app, _ := d.ByToken(tok1)
	coll, _ := d.ByToken(tok2)
	tests := []struct {
		rt            *dispatch.Route
		appName, proc string
		want          string
	}{
		{app, "", "web.1", "app"}, {app, "app", "web.1", "app"}, {app, "papertrail", "x", "papertrail"},
		{app, "kubeplex", "web.1", "app"}, {app, "kubeplex", "router", "app"}, {app, "heroku", "web.1", "app"},
		{coll, "kubeplex", "web.1", "kubeplex"}, {coll, "kubeplex", "router", "app"}, {coll, "kubeplex", "api", "app"},
		{coll, "kubeplex", "deploy", "app"}, {coll, "kubeplexx", "web.1", "app"}, {coll, "papertrail", "web.1", "app"},
	}
	for _, tt := range tests {
		if got := string(tt.rt.SourceFor([]byte(tt.appName), []byte(tt.proc))); got != tt.want {
			t.Errorf("SourceFor(%q, %q) = %q, want %q", tt.appName, tt.proc, got, tt.want)
		}
	}
	for host, ok := range map[string]bool{"shop.example.com": true, "SHOP.EXAMPLE.COM": true, "other.example.com": false, "": false} {
		if _, got := d.ByHost([]byte(host)); got != ok {
			t.Errorf("ByHost(%q) = %v", host, got)
		}
	}
}

func TestStatusReportsBrokenDrains(t *testing.T) {
	d := newDispatcher(t)
	s := drainpeer.NewSyslogSink(t, nil)
	v := apply(t, d, routing.App{ID: "a/b", Drains: []routing.Drain{
		{ID: "a/ok", Token: dt1, URL: "syslog://" + s.Addr},
		{ID: "a/bad", Token: dt2, URL: "ftp://user:pw@example.com/"},
		// Not a Logplex scheme, and refused by the LogDrain CRD: refused here too.
		{ID: "a/tcp", Token: "d.dddddddd-dddd-4ddd-8ddd-dddddddddddd", URL: "syslog+tcp://" + s.Addr},
	}})
	st := d.Status()
	if st.Version != v || st.Router != "test" || st.Started.IsZero() {
		t.Errorf("status head %+v", st)
	}
	if _, ok := st.Drains["a/ok"]; !ok {
		t.Error("good drain missing from status")
	}
	bad := st.Drains["a/bad"]
	if !strings.Contains(bad.LastError, "unsupported scheme") || strings.Contains(bad.LastError, "pw") {
		t.Errorf("bad drain status %+v", bad)
	}
	if tcp := st.Drains["a/tcp"]; !strings.Contains(tcp.LastError, "unsupported scheme") {
		t.Errorf("syslog+tcp drain status %+v, want unsupported scheme", tcp)
	}
	if err := d.Apply(&routing.Table{Apps: []routing.App{{ID: "x"}, {ID: "x"}}}); err == nil {
		t.Error("invalid table applied")
	}
	if d.Version() != v {
		t.Error("invalid table changed the version")
	}
}

// TestReaddedDrainCountsOn: a drain taken out of the table and put back (same ID)
// continues its /status counters, which are documented as cumulative, instead of
// starting again from zero.
func TestReaddedDrainCountsOn(t *testing.T) {
	d := newDispatcher(t)
	s := drainpeer.NewSyslogSink(t, nil)
	app := routing.App{ID: "a/b", Tokens: []routing.Token{{Token: tok1, Source: "app"}},
		Drains: []routing.Drain{{ID: "a/d", Token: dt1, URL: "syslog://" + s.Addr}}}
	apply(t, d, app)
	publish(t, d, tok1, "one", "two", "three")
	s.WaitFor(t, 3)
	waitDelivered := func(n int64) {
		t.Helper()
		testenv.Until(t, fmt.Sprintf("drain a/d delivered %d", n), func() bool {
			return d.Status().Drains["a/d"].Delivered == n
		})
	}
	waitDelivered(3)

	removed := app
	removed.Drains = nil
	apply(t, d, removed)
	if _, ok := d.Status().Drains["a/d"]; ok {
		t.Fatal("removed drain still in status")
	}
	apply(t, d, app)
	publish(t, d, tok1, "four")
	// 3 before and "four": from zero it would be 1.
	waitDelivered(4)
}

// TestTokenDigestForms: a table's token digests route in either hex case, and a
// digest that is not 32 hex bytes is left out without taking the others with it.
func TestTokenDigestForms(t *testing.T) {
	d := newDispatcher(t)
	apply(t, d, routing.App{ID: "a/b", Tokens: []routing.Token{
		{SHA256: strings.ToUpper(routing.HashToken(tok1)), Source: "app"},
		{SHA256: routing.HashToken(tok2)[:62] + "zz", Source: "app"},
		{SHA256: routing.HashToken(dt1)[:60], Source: "app"},
		{Token: dt2, Source: "app"},
	}})
	for tok, want := range map[string]bool{tok1: true, tok2: false, dt1: false, dt2: true} {
		if _, ok := d.ByToken(tok); ok != want {
			t.Errorf("ByToken(%s) = %v, want %v", tok[:6], ok, want)
		}
	}
}

// TestUnchangedDrainsKeepRunners: a table that leaves an app's drains alone keeps
// their runners (no new queue, no new connection), and a drain whose new URL cannot
// be parsed is reported and its old runner stopped, as for a removed drain.
func TestUnchangedDrainsKeepRunners(t *testing.T) {
	d := newDispatcher(t)
	s := drainpeer.NewSyslogSink(t, nil)
	app := routing.App{ID: "a/b", Tokens: []routing.Token{{Token: tok1, Source: "app"}},
		Drains: []routing.Drain{{ID: "a/d", Token: dt1, URL: "syslog://" + s.Addr}}}
	apply(t, d, app)
	a, _ := d.App("a/b")
	r := a.Drains()[0]
	apply(t, d, app, routing.App{ID: "c/d", Tokens: []routing.Token{{Token: tok2, Source: "app"}}})
	if got := a.Drains(); len(got) != 1 || got[0] != r {
		t.Fatalf("unchanged drain got a new runner: %v", got)
	}
	publish(t, d, tok1, "one")
	s.WaitFor(t, 1)

	app.Drains[0].URL = "syslog://[::1"
	apply(t, d, app)
	if n := len(a.Drains()); n != 0 {
		t.Errorf("%d runners for a drain whose URL does not parse", n)
	}
	if st := d.Status().Drains["a/d"]; !strings.Contains(st.LastError, "parse drain URL") {
		t.Errorf("status %+v, want the parse error", st)
	}
	dispatch.WaitRemoved(d)
	s.WaitClosed(t)
}

// TestOriginsOnlyForOTLP: a batch's origin (a collector's pod and node) reaches an
// OTLP drain as k8s.pod.name and k8s.node.name, is carried into drain records only
// while the app has such a drain, and never changes a syslog drain's frames.
func TestOriginsOnlyForOTLP(t *testing.T) {
	d := newDispatcher(t)
	s := drainpeer.NewSyslogSink(t, nil)
	rv := drainpeer.NewOTLPReceiver(t, nil, nil)
	syslogOnly := routing.App{ID: "a/b", Tokens: []routing.Token{{Token: tok1, Source: "app", Collector: true}},
		Drains: []routing.Drain{{ID: "a/d", Token: dt1, URL: "syslog://" + s.Addr}}}
	apply(t, d, syslogOnly)
	a, _ := d.App("a/b")
	if a.Drains()[0].UsesOrigin() {
		t.Fatal("a syslog drain uses origins")
	}
	origin := message.AppendOrigin(nil, "web-5c6d-9xk2p", "node-a")
	rec := message.AppendStrings(nil, 190, time.Now(), "app", "web.1", "one")
	a.PublishFrom([][]byte{rec}, origin)
	s.WaitFor(t, 1)

	both := syslogOnly
	both.Drains = append(both.Drains, routing.Drain{ID: "a/o", Token: dt2, URL: "otlp+http://" + strings.TrimPrefix(rv.URL, "http://")})
	apply(t, d, both)
	rec2 := message.AppendStrings(nil, 190, time.Now(), "app", "web.1", "two")
	a.PublishFrom([][]byte{rec2}, origin)
	a.Publish([][]byte{message.AppendStrings(nil, 190, time.Now(), "app", "web.1", "three")})
	s.WaitFor(t, 3)
	got := rv.WaitAccepted(t, 2)
	res := map[string]map[string]string{}
	for _, r := range got {
		res[r.Body] = r.Resource
	}
	if r := res["two"]; r["k8s.pod.name"] != "web-5c6d-9xk2p" || r["k8s.node.name"] != "node-a" {
		t.Errorf("record from a collector: resource %v", r)
	}
	if r := res["three"]; r == nil || r["k8s.pod.name"] != "" || r["k8s.node.name"] != "" {
		t.Errorf("record without an origin: resource %v", r)
	}
	for _, f := range s.Raw() {
		if strings.Contains(string(f), "node-a") || strings.Contains(string(f), "9xk2p") {
			t.Errorf("syslog frame carries the origin: %q", f)
		}
	}
}
