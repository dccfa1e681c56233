package ingest_test

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/go-syslog/v3/rfc5424"
	dto "github.com/prometheus/client_model/go"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/ingest"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/metrics"
)

const (
	tokWeb = "t.11111111-1111-4111-8111-111111111111"
	tokAPI = "t.22222222-2222-4222-8222-222222222222"
	// tokWebCollector is shop/web's collector credential; tokPlatform is kubeplex's own.
	tokWebCollector = "c.33333333-3333-4333-8333-333333333333"
	tokPlatform     = "p.44444444-4444-4444-8444-444444444444"
)

type env struct {
	d   *dispatch.Dispatcher
	m   *metrics.Metrics
	url string
}

func setup(t *testing.T, limits ingest.Limits) *env {
	t.Helper()
	m := metrics.New()
	log := slog.New(slog.DiscardHandler)
	d := dispatch.New(dispatch.Options{Metrics: m, Logger: log})
	tbl := routing.Table{Apps: []routing.App{
		{ID: "shop/web", Hosts: []string{"shop.example.com"},
			Tokens: []routing.Token{{Token: tokWeb, Source: "app"}, {Token: tokWebCollector, Source: "app", Collector: true}}},
		{ID: "shop/api", Tokens: []routing.Token{{SHA256: routing.HashToken(tokAPI), Source: "app"}}},
	}, Platform: []routing.Token{{SHA256: routing.HashToken(tokPlatform), Source: "kubeplex"}}}
	tbl.Seal()
	if err := d.Apply(&tbl); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ingest.NewHTTP(d, limits, m, log))
	t.Cleanup(srv.Close)
	return &env{d: d, m: m, url: srv.URL}
}

// lines returns "source[proc] text" of an app's history.
func (e *env) lines(id string) []string {
	a, ok := e.d.App(id)
	if !ok {
		return nil
	}
	var out []string
	a.History.Last(10000, func(rec []byte) bool {
		m, _ := message.Decode(rec)
		out = append(out, fmt.Sprintf("%s[%s] %s", m.Source, m.ProcID, m.Text))
		return true
	})
	return out
}

func (e *env) waitLines(t *testing.T, id string, n int) []string {
	t.Helper()
	var got []string
	testenv.Eventually(t, fmt.Sprintf("%d lines in app %s", n, id), func() error {
		if got = e.lines(id); len(got) < n {
			return fmt.Errorf("%d lines: %q", len(got), got)
		}
		return nil
	})
	return got
}

func frames(recs ...string) []byte {
	var b []byte
	for _, r := range recs {
		b = wire.AppendFrame(b, []byte(r))
	}
	return b
}

// TestLogShuttle sends what an unmodified log-shuttle sends: user "token" with the
// token as password, a chunked body without Content-Length, X-Request-Id and no
// Logplex-Frame-Id, 500 lines whose APP-NAME is log-shuttle's appname.
func TestLogShuttle(t *testing.T) {
	e := setup(t, ingest.Limits{})
	recs := make([]string, 0, 500)
	for i := range 500 {
		recs = append(recs, fmt.Sprintf("<190>1 2026-11-25T10:00:00.%06d+00:00 shuttle %s shuttle - - line %d", i, tokWeb, i))
	}
	body := frames(recs...)
	pr, pw := io.Pipe()
	go func() {
		// Several writes: the client sends chunks as they come.
		for i := 0; i < len(body); i += 4096 {
			_, _ = pw.Write(body[i:min(i+4096, len(body))])
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/logs", pr)
	req.Header.Set("Content-Type", "application/logplex-1")
	req.Header.Set("Logplex-Msg-Count", "500")
	req.Header.Set("X-Request-Id", "0f8f9a1c-5b0e-4a53-9b0e-1c3c2f7d9e10")
	req.Header.Set("User-Agent", "log-shuttle/0.17.0 (go1.26; linux; amd64)")
	req.SetBasicAuth("token", tokWeb)
	req.TransferEncoding = []string{"chunked"} // no Content-Length, as log-shuttle
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // only the status is checked
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := e.lines("shop/web")
	if len(got) != 500 || got[0] != "app[shuttle] line 0" || got[499] != "app[shuttle] line 499" {
		t.Fatalf("history has %d lines: first %q", len(got), got[:min(2, len(got))])
	}
	for _, l := range got {
		if strings.Contains(l, tokWeb) {
			t.Fatal("token leaked into a line")
		}
	}
}

func TestHTTPVariants(t *testing.T) {
	long := strings.Repeat("x", 25000)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		_ = zw.Close()
		return buf.Bytes()
	}
	tests := []struct {
		name   string
		auth   func(*http.Request)
		hdr    map[string]string
		body   []byte
		code   int
		app    string
		want   []string
		reason string
	}{
		{name: "bearer", auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tokAPI) },
			body: frames("<190>1 2026-11-25T10:00:00Z h app web.2 - - via bearer"), code: 204, app: "shop/api",
			want: []string{"app[web.2] via bearer"}},
		{name: "gzip", auth: basic(tokWeb), hdr: map[string]string{"Content-Encoding": "gzip"},
			body: gz(frames("<190>1 2026-11-25T10:00:00Z h app web.1 - - zipped")), code: 204, app: "shop/web",
			want: []string{"app[web.1] zipped"}},
		{name: "collector credential writes process events", auth: basic(tokWebCollector),
			body: frames("<190>1 2026-11-25T10:00:00Z h kubeplex web.1 - - Starting process"), code: 204, app: "shop/web",
			want: []string{"kubeplex[web.1] Starting process"}},
		{name: "token cannot pick app or platform source", auth: basic(tokAPI),
			body: frames("<190>1 2026-11-25T10:00:00Z shop.example.com kubeplex web.1 - - spoof"), code: 204, app: "shop/api",
			want: []string{"app[web.1] spoof"}},
		{name: "long line split as Logplex", auth: basic(tokWeb),
			body: frames("<190>1 2026-11-25T10:00:00Z h app web.1 - - " + long), code: 204, app: "shop/web",
			want: []string{"app[web.1] " + long[:10000], "app[web.1] " + long[:10000], "app[web.1] " + long[:5000]}},
		{name: "frame over limit", auth: basic(tokWeb),
			body: frames("<190>1 2026-11-25T10:00:00Z h app web.1 - - " + strings.Repeat("y", 70000)), code: 413,
			reason: wire.ReasonFrameTooLarge},
		{name: "body over limit", auth: basic(tokWeb),
			body: frames(strings.Repeat("<190>1 2026-11-25T10:00:00Z h app web.1 - - "+strings.Repeat("z", 1000)+"\x00", 1100)), code: 413,
			reason: wire.ReasonTooLarge},
		{name: "bad gzip", auth: basic(tokWeb), hdr: map[string]string{"Content-Encoding": "gzip"},
			body: []byte("not gzip"), code: 400, reason: wire.ReasonMalformed},
		{name: "one bad record refuses the batch", auth: basic(tokWeb),
			body: frames("<190>1 2026-11-25T10:00:00Z h app web.1 - - ok", "garbage"), code: 400, reason: wire.ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, ingest.Limits{MaxFrame: 64 << 10, MaxBody: 1 << 20})
			req, _ := http.NewRequest(http.MethodPost, e.url+"/logs", bytes.NewReader(tt.body))
			req.Header.Set("Content-Type", "application/logplex-1")
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			tt.auth(req)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close() // read to the end
			if resp.StatusCode != tt.code || !strings.Contains(string(b), tt.reason) {
				t.Fatalf("answer %d %q, want %d %q", resp.StatusCode, b, tt.code, tt.reason)
			}
			if tt.app == "" {
				if n := len(e.lines("shop/web")) + len(e.lines("shop/api")); n != 0 {
					t.Fatalf("refused request left %d lines", n)
				}
				return
			}
			if got := e.lines(tt.app); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("lines %.200q, want %.200q", got, tt.want)
			}
		})
	}
}

func basic(tok string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth("token", tok) }
}

func startSyslog(t *testing.T, e *env, readTimeout time.Duration) (tcp, tlsAddr, udp string, ca *testenv.CA) {
	t.Helper()
	sl := ingest.NewSyslog(e.d, ingest.Limits{MaxFrame: 16 << 10}, readTimeout, e.m, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sl.ServeTCP(ln, "tcp") }()
	ca = testenv.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := testenv.WriteKeyPair(t, dir, ca.Server(t))
	tln, err := ingest.ListenTLS("127.0.0.1:0", certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sl.ServeTCP(tln, "tls") }()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sl.ServeUDP(pc) }()
	t.Cleanup(func() {
		// The test is over; Shutdown stops what the closed listeners served.
		_, _, _ = ln.Close(), tln.Close(), pc.Close()
		sl.Shutdown()
	})
	_ = os.Remove(certFile)
	return ln.Addr().String(), tln.Addr().String(), pc.LocalAddr().String(), ca
}

func TestSyslogTCP(t *testing.T) {
	tests := []struct {
		name string
		send string
		app  string
		want []string
	}{
		{name: "octet counting, token in APP-NAME",
			send: string(frames("<190>1 2026-11-25T10:00:00Z host "+tokWeb+" web.1 - - one", "<190>1 2026-11-25T10:00:01Z host "+tokWeb+" web.1 - - two")),
			app:  "shop/web", want: []string{"app[web.1] one", "app[web.1] two"}},
		{name: "newline framing",
			send: "<190>1 2026-11-25T10:00:00Z host " + tokAPI + " worker.1 - - a\n<190>1 2026-11-25T10:00:00Z host " + tokAPI + " worker.1 - - b\r\n",
			app:  "shop/api", want: []string{"app[worker.1] a", "app[worker.1] b"}},
		{name: "access log mapped by host, BSD syslog from nginx",
			send: `<190>Nov 25 10:00:00 ingress-7d9f nginx: 10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET /cart HTTP/1.1" 200 12 "-" "curl/8.5.0" host=shop.example.com` + "\n",
			app:  "shop/web", want: []string{`kubeplex[router] at=info method=GET path="/cart" host=shop.example.com fwd="10.0.0.1" status=200 bytes=12 protocol=http`}},
		{name: "unknown app and junk are dropped, the rest kept",
			send: string(frames("<190>1 2026-11-25T10:00:00Z nowhere.example x - - - lost", "<190>1 2026-11-25T10:00:00Z host "+tokWeb+" web.1 - - kept")),
			app:  "shop/web", want: []string{"app[web.1] kept"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, ingest.Limits{})
			tcp, _, _, _ := startSyslog(t, e, time.Minute)
			c, err := net.Dial("tcp", tcp)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }() // the subtest is over
			if _, err := c.Write([]byte(tt.send)); err != nil {
				t.Fatal(err)
			}
			got := e.waitLines(t, tt.app, len(tt.want))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSyslogLimits(t *testing.T) {
	e := setup(t, ingest.Limits{})
	tcp, _, _, _ := startSyslog(t, e, 300*time.Millisecond)
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the router closes it first; see below
	// A good frame, then one declaring more than the frame limit: the connection is
	// closed without reading (or allocating) the big frame.
	_, _ = c.Write(frames("<190>1 2026-11-25T10:00:00Z host " + tokWeb + " web.1 - - before"))
	_, _ = c.Write([]byte("999999 <190>1 "))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after an oversized frame")
	}
	if got := e.lines("shop/web"); fmt.Sprint(got) != "[app[web.1] before]" {
		t.Errorf("lines %q", got)
	}
	// A silent connection is closed after the read timeout.
	c2, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c2.Close() }() // the router closes it first; see below
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("silent connection: %v, want closed by the router", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSyslogTLSAndUDP(t *testing.T) {
	e := setup(t, ingest.Limits{})
	_, tlsAddr, udp, ca := startSyslog(t, e, time.Minute)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write(frames("<190>1 2026-11-25T10:00:00Z host " + tokWeb + " web.1 - - over tls"))
	e.waitLines(t, "shop/web", 1)
	_ = c.Close() // the line arrived; closing only ends the session

	u, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = u.Close() }() // the test is over
	_, _ = u.Write([]byte("<190>1 2026-11-25T10:00:00Z host " + tokWeb + " web.1 - - udp plain\n"))
	_, _ = u.Write(frames("<190>1 2026-11-25T10:00:00Z host "+tokWeb+" web.1 - - udp a", "<190>1 2026-11-25T10:00:00Z host "+tokWeb+" web.1 - - udp b"))
	got := e.waitLines(t, "shop/web", 4)
	if want := "[app[web.1] over tls app[web.1] udp plain app[web.1] udp a app[web.1] udp b]"; fmt.Sprint(got) != want {
		t.Errorf("lines %q", got)
	}
}

// TestCollectorStateErrorsCounted: a collector's warning that it cannot keep a
// process's restart count (MSGID state-error, source kubeplex) is counted per app;
// the same MSGID in an app line is not.
func TestCollectorStateErrorsCounted(t *testing.T) {
	e := setup(t, ingest.Limits{})
	body := frames(
		"<188>1 2026-11-25T10:00:00.000001+00:00 web-1 kubeplex web.1 state-error - Warning: cannot keep this process's restart count (read-only file system); restarts will not be reported",
		"<190>1 2026-11-25T10:00:00.000002+00:00 web-1 app web.1 state-error - an app line that happens to use the MSGID")
	req, _ := http.NewRequest(http.MethodPost, e.url+"/logs", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/logplex-1")
	req.SetBasicAuth("token", tokWebCollector)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // only the status is checked
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var pb dto.Metric
	if err := e.m.CollectorStateErrors.WithLabelValues("shop/web").Write(&pb); err != nil {
		t.Fatal(err)
	}
	if got := pb.GetCounter().GetValue(); got != 1 {
		t.Errorf("kubeplex_router_collector_state_errors_total{app=shop/web} = %v, want 1", got)
	}
}

// TestStrictReceiversTakeEveryFrame: what a drain gets for a line whose timestamp
// leaves years 0000-9999 once in UTC, or whose text is not UTF-8, is still a frame
// go-syslog's strict RFC 5424 parser takes (before, both were refused whole, and with
// them the drain token and app name). Such a time becomes the receive time; bad
// bytes become U+FFFD (docs/drains.md).
func TestStrictReceiversTakeEveryFrame(t *testing.T) {
	e := setup(t, ingest.Limits{})
	before := time.Now()
	body := frames(
		"<190>1 9999-12-31T23:59:59.000000-23:59 h app web.1 - - year ten thousand",
		"<190>1 0000-01-01T00:00:00+00:01 h app web.1 - - year minus one",
		"<190>1 2026-11-25T10:00:00Z h app web.1 - - bad \xff\xfe bytes \xc3",
		"<190>1 9999-12-31T23:59:59.999999Z h app web.1 - - last valid moment",
	)
	req, _ := http.NewRequest(http.MethodPost, e.url+"/logs", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/logplex-1")
	req.SetBasicAuth("token", tokWeb)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // only the status matters
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	e.waitLines(t, "shop/web", 4)
	after := time.Now()
	a, _ := e.d.App("shop/web")
	strict := rfc5424.NewParser()
	var got []*rfc5424.SyslogMessage
	a.History.Last(10, func(rec []byte) bool {
		m, err := message.Decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		frame := message.AppendRFC5424(nil, &m, "d.00000000-0000-4000-8000-000000000001")
		sm, err := strict.Parse(frame)
		if err != nil {
			t.Errorf("strict parser refuses %q: %v", frame, err)
			return true
		}
		got = append(got, sm.(*rfc5424.SyslogMessage))
		return true
	})
	if len(got) != 4 {
		t.Fatalf("%d frames parsed, want 4", len(got))
	}
	for i, sm := range got[:2] {
		ts := *sm.Timestamp
		if ts.Before(before.Truncate(time.Microsecond)) || ts.After(after) {
			t.Errorf("frame %d time %s, want the receive time", i, ts)
		}
	}
	if msg := *got[2].Message; msg != "bad \uFFFD bytes \uFFFD" { // one U+FFFD per run of bad bytes
		t.Errorf("invalid UTF-8 became %q", msg)
	}
	if ts := *got[3].Timestamp; ts.Year() != 9999 {
		t.Errorf("last valid moment became %s", ts)
	}
}

// TestSyslogQuietAfterBusy: a connection that sends one frame per write as fast as
// it can makes the reader coalesce (wait before reads, with the socket's low-water
// mark raised); when it then goes quiet, a lone frame is still read and published.
// Counted: if the mark stayed raised, the last frame would never arrive.
func TestSyslogQuietAfterBusy(t *testing.T) {
	e := setup(t, ingest.Limits{})
	tcp, _, _, _ := startSyslog(t, e, time.Minute)
	c, err := net.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the test is over
	// Within the history's 1500 lines.
	const n = 1000
	for i := range n {
		if _, err := c.Write(frames(fmt.Sprintf("<190>1 2026-11-25T10:00:00Z host %s web.1 - - busy %d", tokWeb, i))); err != nil {
			t.Fatal(err)
		}
	}
	got := e.waitLines(t, "shop/web", n)
	for i, l := range got {
		if want := fmt.Sprintf("app[web.1] busy %d", i); l != want {
			t.Fatalf("line %d = %q, want %q", i, l, want)
		}
	}
	if _, err := c.Write(frames("<190>1 2026-11-25T10:00:01Z host " + tokWeb + " web.1 - - alone")); err != nil {
		t.Fatal(err)
	}
	if got := e.waitLines(t, "shop/web", n+1); got[n] != "app[web.1] alone" {
		t.Fatalf("last line %q", got[n])
	}
}
