package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	peer "github.com/kubeplex/kubeplex/router/drainpeer"
)

var routerBin string

func TestMain(m *testing.M) {
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/router")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	routerBin = bins["router"]
	code := m.Run()
	cleanup()
	os.Exit(code)
}

const (
	ingestToken = "t.6f1c3a52-8d7e-4b1a-9c7e-0d2f4a1b3c5d"
	drainToken  = "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
)

func writeTable(t testing.TB, tbl routing.Table) string {
	t.Helper()
	b, err := json.Marshal(tbl)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "routes.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func frames(recs ...string) string {
	var b []byte
	for _, r := range recs {
		b = wire.AppendFrame(b, []byte(r))
	}
	return string(b)
}

func post(t testing.TB, url, token, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", wire.ContentType)
	if token != "" {
		req.SetBasicAuth("token", token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // read to the end; the callers check status and body
	return resp, string(b)
}

// TestStandaloneToSyslogDrain runs the binary with a table file and checks that lines
// POSTed with an ingest token reach a real TCP syslog receiver as RFC 5424 frames
// carrying the drain token, with the source rule applied.
func TestStandaloneToSyslogDrain(t *testing.T) {
	sink := peer.NewSyslogSink(t, nil)
	routes := writeTable(t, routing.Table{Apps: []routing.App{{
		ID:     "shop/web",
		Tokens: []routing.Token{{Token: ingestToken, Source: "app", Collector: true}},
		Drains: []routing.Drain{{ID: "shop/tcp", Token: drainToken, URL: "syslog://" + sink.Addr}},
	}}})
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	base, admin := "http://"+addr, "http://"+adminAddr
	p := testenv.Start(t, routerBin, nil, "--http-addr", addr, "--admin-addr", adminAddr, "--routes", routes, "--allow-cidrs", "127.0.0.0/8")
	testenv.WaitHTTP(t, base+"/readyz")

	body := frames(
		"<190>1 2026-11-25T10:00:00.123456+00:00 host app web.1 - - hello",
		"<190>1 2026-11-25T10:00:01.000001Z host kubeplex web.1 - - Process exited with status 0",
		"<187>1 2026-11-25T10:00:02+01:00 host evil web.1 - - oops",
	)
	resp, _ := post(t, base+"/logs", ingestToken, body, map[string]string{wire.HeaderMsgCount: "3"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /logs = %d, want 204", resp.StatusCode)
	}
	got := sink.WaitFor(t, 3)
	want := []struct {
		pri             uint8
		time, app, proc string
		text            string
	}{
		{190, "2026-11-25T10:00:00.123456Z", "app", "web.1", "hello"},
		{190, "2026-11-25T10:00:01.000001Z", "kubeplex", "web.1", "Process exited with status 0"},
		{187, "2026-11-25T09:00:02Z", "app", "web.1", "oops"}, // "evil" is not an allowed source
	}
	for i, w := range want {
		m := got[i]
		if m.Priority != w.pri || m.Hostname != drainToken || m.AppName != w.app || m.ProcID != w.proc || string(m.Text) != w.text {
			t.Errorf("message %d = <%d> %s %s %s %q, want <%d> %s %s %s %q", i, m.Priority, m.Hostname, m.AppName, m.ProcID, m.Text,
				w.pri, drainToken, w.app, w.proc, w.text)
		}
		wt, _ := time.Parse(time.RFC3339Nano, w.time)
		if !m.Time.Equal(wt) {
			t.Errorf("message %d time = %s, want %s", i, m.Time, wt)
		}
	}
	if sink.Bad() != 0 {
		t.Errorf("sink got %d unparseable frames", sink.Bad())
	}

	st := status(t, admin)
	if st.Version == "" || st.Drains["shop/tcp"].Delivered != 3 || st.Drains["shop/tcp"].LastSuccess == nil {
		t.Errorf("status = %+v, want a version and 3 delivered to shop/tcp", st)
	}
	if err := p.Stop(20 * time.Second); err != nil {
		t.Errorf("router exit: %v", err)
	}
	if strings.Contains(p.Out.String(), ingestToken) {
		t.Error("router output contains the ingest token")
	}
}

func status(t *testing.T, admin string) routing.RouterStatus {
	t.Helper()
	resp, err := http.Get(admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only; Decode reports what matters
	var st routing.RouterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestIngestRefusals checks the answers for requests the router must refuse, and that
// a refused request leaves nothing in the drain.
func TestIngestRefusals(t *testing.T) {
	sink := peer.NewSyslogSink(t, nil)
	routes := writeTable(t, routing.Table{Apps: []routing.App{{
		ID:     "shop/web",
		Tokens: []routing.Token{{SHA256: routing.HashToken(ingestToken), Source: "app"}},
		Drains: []routing.Drain{{ID: "shop/tcp", Token: drainToken, URL: "syslog://" + sink.Addr}},
	}}})
	addr := testenv.FreeAddr(t)
	base := "http://" + addr
	p := testenv.Start(t, routerBin, nil, "--http-addr", addr, "--admin-addr", testenv.FreeAddr(t), "--routes", routes, "--allow-cidrs", "127.0.0.0/8")
	testenv.WaitHTTP(t, base+"/readyz")

	good := frames("<190>1 2026-11-25T10:00:00Z host app web.1 - - fine")
	tests := []struct {
		name     string
		token    string
		body     string
		hdr      map[string]string
		code     int
		wantBody string
	}{
		{name: "no token", body: good, code: 401},
		{name: "unknown token", token: "t.00000000-0000-4000-8000-000000000000", body: good, code: 401},
		{name: "malformed frame", token: ingestToken, body: "12 not a frame", code: 400, wantBody: wire.ReasonMalformed},
		{name: "malformed record", token: ingestToken, body: frames("hello"), code: 400, wantBody: wire.ReasonMalformed},
		{name: "count mismatch", token: ingestToken, body: good, hdr: map[string]string{wire.HeaderMsgCount: "2"}, code: 400, wantBody: wire.ReasonCount},
		{name: "wrong content type", token: ingestToken, body: good, hdr: map[string]string{"Content-Type": "text/plain"}, code: 400, wantBody: wire.ReasonContentType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, base+"/logs", tt.token, tt.body, tt.hdr)
			if resp.StatusCode != tt.code {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.code, body)
			}
			if tt.code == 401 && resp.Header.Get("WWW-Authenticate") != `Basic realm="kubeplex"` {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
	// A good request after the refusals is the only thing delivered.
	if resp, _ := post(t, base+"/logs", ingestToken, good, nil); resp.StatusCode != 204 {
		t.Fatalf("good POST = %d", resp.StatusCode)
	}
	sink.WaitFor(t, 1)
	// A graceful stop flushes the drain and closes its connection: once the sink has
	// read it to the end, anything wrongly accepted has arrived too.
	if err := p.Stop(30 * time.Second); err != nil {
		t.Errorf("router exit: %v", err)
	}
	sink.WaitClosed(t)
	if got := sink.Messages(); len(got) != 1 || string(got[0].Text) != "fine" {
		t.Fatalf("sink got %d messages (%v), want only \"fine\"", len(got), got)
	}
}

// TestAdminSurfacesApart: /status and /metrics (every drain's state, every app's
// counters) are on the admin listener only; a pod that can post logs reaches the
// ingest port and gets nothing there but ingest and the probes.
func TestAdminSurfacesApart(t *testing.T) {
	routes := writeTable(t, routing.Table{})
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	testenv.Start(t, routerBin, nil, "--http-addr", addr, "--admin-addr", adminAddr, "--routes", routes)
	base, admin := "http://"+addr, "http://"+adminAddr
	testenv.WaitHTTP(t, base+"/readyz")
	for _, tt := range []struct {
		url  string
		want int
	}{
		{base + "/status", http.StatusNotFound},
		{base + "/metrics", http.StatusNotFound},
		{base + "/healthz", http.StatusOK},
		{admin + "/status", http.StatusOK},
		{admin + "/metrics", http.StatusOK},
		{admin + "/readyz", http.StatusOK},
		{admin + "/logs", http.StatusNotFound},
	} {
		resp, err := http.Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // only the status matters
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.want)
		}
	}
}
