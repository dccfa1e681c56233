package reliability

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/go-syslog/v3/rfc5424"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// injections are message texts that try to end a frame early, start another, or
// break a strict receiver's parse. Each is posted as one frame and must arrive as one.
func injections(victimDrain string) []string {
	now := time.Now().UTC().Format(wire.TimeLayout)
	return []string{
		"line one\nline two\r\nline three",
		"nul \x00 in the middle\x00",
		"trailing newline\n",
		"\n<13>1 " + now + " " + victimDrain + " app web.1 - - injected after a newline",
		"<13>1 " + now + " " + victimDrain + " app web.1 - - a whole header as text",
		"57 <13>1 " + now + " " + victimDrain + " app web.1 - - octet count",
		"bad utf-8 \xff\xfe\xc3 and \xed\xa0\x80 surrogate",
		`[exampleSDID@32473 iut="3" eventSource="Application"] SD-like text`,
		`- [x@1 a="]"][y@2] - nested "quotes" \] and ] brackets`,
		"\ufeffBOM at the start",
		strings.Repeat("x", 300) + "\n" + strings.Repeat("y", 300),
	}
}

// TestScenario9Injection: an app's messages carry newlines, NULs, syslog headers
// (one naming another app's drain token), octet counts, invalid UTF-8, BOMs and
// SD-like text, some in frames whose header fields are at RFC 5424's limits (over
// them, the batch is refused at ingest). At every drain type
// (syslog, syslog+TLS, HTTP, HTTPS) each message arrives as exactly one frame that
// go-syslog's strict RFC 5424 parser takes, with header fields within RFC 5424's
// limits and the drain's own token in HOSTNAME; at OTLP drains (HTTP and gRPC) as
// exactly one LogRecord that the generated OTLP types decode (valid UTF-8), with the
// drain's token and no attribute taken from the text; the other app's drains receive
// nothing of it.
func TestScenario9Injection(t *testing.T) {
	ca := testenv.NewCA(t)
	cert := ca.Server(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	caTLS := &routing.TLS{CAPEM: string(ca.PEM)}
	plain := drainpeer.NewSyslogSink(t, nil)
	secure := drainpeer.NewSyslogSink(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	web := drainpeer.NewHTTPReceiver(t, nil, nil)
	webs := drainpeer.NewHTTPReceiver(t, &cert, nil)
	victimSink := drainpeer.NewSyslogSink(t, nil)
	otel := drainpeer.NewOTLPReceiver(t, nil, nil)
	t.Cleanup(plain.Close)
	t.Cleanup(secure.Close)
	t.Cleanup(victimSink.Close)

	const (
		attacker = "t.1a1ec700-0000-4000-8000-000000000001"
		victim   = "t.1a1ec700-0000-4000-8000-000000000002"
		victimD  = "d.1a1ec700-0000-4000-8000-0000000000v1"
	)
	tokens := map[string]string{
		"syslog": "d.1a1ec700-0001-4000-8000-000000000001", "syslog+tls": "d.1a1ec700-0001-4000-8000-000000000002",
		"http": "d.1a1ec700-0001-4000-8000-000000000003", "https": "d.1a1ec700-0001-4000-8000-000000000004",
		"otlp+http": "d.1a1ec700-0001-4000-8000-000000000005", "otlp+grpc": "d.1a1ec700-0001-4000-8000-000000000006",
	}
	tbl := routing.Table{Apps: []routing.App{
		{ID: "rel/attacker", Tokens: []routing.Token{{Token: attacker, Source: "app"}}, Drains: []routing.Drain{
			{ID: "rel/syslog", Token: tokens["syslog"], URL: "syslog://" + plain.Addr},
			{ID: "rel/syslog-tls", Token: tokens["syslog+tls"], URL: "syslog+tls://" + secure.Addr, TLS: caTLS},
			{ID: "rel/http", Token: tokens["http"], URL: web.URL + "/logs"},
			{ID: "rel/https", Token: tokens["https"], URL: webs.URL + "/logs", TLS: caTLS},
			{ID: "rel/otlp-http", Token: tokens["otlp+http"], URL: "otlp+http://" + strings.TrimPrefix(otel.URL, "http://")},
			{ID: "rel/otlp-grpc", Token: tokens["otlp+grpc"], URL: "otlp+grpc://" + otel.GRPCAddr},
		}},
		{ID: "rel/victim", Tokens: []routing.Token{{Token: victim, Source: "app"}}, Drains: []routing.Drain{
			{ID: "rel/victim", Token: victimD, URL: "syslog://" + victimSink.Addr},
		}},
	}}
	r, _ := startRouterTable(t, tbl)

	texts := injections(victimD)
	post := func(token string, frames ...string) (int, string) {
		t.Helper()
		var body []byte
		for _, f := range frames {
			body = wire.AppendFrame(body, []byte(f))
		}
		req, err := http.NewRequest(http.MethodPost, r.base+"/logs", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", wire.ContentType)
		req.Header.Set(wire.HeaderMsgCount, strconv.Itoa(len(frames)))
		req.SetBasicAuth("token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // read
		return resp.StatusCode, string(b)
	}
	stamp := time.Now().UTC().Format(wire.TimeLayout)
	// Header fields over RFC 5424's limits (HOSTNAME 255, APP-NAME 48, PROCID 128) are
	// refused at ingest, the batch whole, with a clear answer: nothing of it reaches
	// a drain.
	for _, f := range []string{
		fmt.Sprintf("<190>1 %s %s app web.1 - - long host", stamp, strings.Repeat("h", 256)),
		fmt.Sprintf("<190>1 %s host %s web.1 - - long app", stamp, strings.Repeat("a", 49)),
		fmt.Sprintf("<190>1 %s host app %s - - long procid", stamp, strings.Repeat("p", 129)),
	} {
		if code, answer := post(attacker, "<190>1 "+stamp+" host app web.1 - - refused with its batch", f); code != http.StatusBadRequest {
			t.Errorf("oversized header: POST /logs = %d %s, want 400", code, answer)
		}
	}
	// Every injection as one frame; every third with header fields at the limits.
	frames := make([]string, 0, len(texts))
	for i, text := range texts {
		host, app, proc := "host", "app", "web.1"
		if i%3 == 1 {
			host, app, proc = strings.Repeat("h", 255), strings.Repeat("a", 48), strings.Repeat("p", 128)
		}
		frames = append(frames, fmt.Sprintf("<190>1 %s %s %s %s - - %s", stamp, host, app, proc, text))
	}
	if code, answer := post(attacker, frames...); code != http.StatusNoContent {
		t.Fatalf("POST /logs = %d %s", code, answer)
	}
	// The victim posts one line of its own, which is all its drain may get.
	g := &Generator{URL: r.base + "/logs", Token: victim, App: "victim"}
	if _, err := g.Send(1, 1); err != nil {
		t.Fatal(err)
	}

	raw := map[string]func() [][]byte{
		"syslog": func() [][]byte { return plain.Raw() }, "syslog+tls": func() [][]byte { return secure.Raw() },
		"http": func() [][]byte { return httpRecords(web) }, "https": func() [][]byte { return httpRecords(webs) },
	}
	strict := rfc5424.NewParser()
	for kind, get := range raw {
		var recs [][]byte
		testenv.Until(t, kind+" drain got every message", func() bool { recs = get(); return len(recs) >= len(texts) })
		if len(recs) != len(texts) {
			t.Errorf("%s: %d frames for %d messages", kind, len(recs), len(texts))
		}
		for i, rec := range recs {
			sm, err := strict.Parse(rec)
			if err != nil {
				t.Errorf("%s frame %d: strict parser refuses %q: %v", kind, i, rec, err)
				continue
			}
			m := sm.(*rfc5424.SyslogMessage)
			host, app, proc := deref(m.Hostname), deref(m.Appname), deref(m.ProcID)
			if host != tokens[kind] {
				t.Errorf("%s frame %d: HOSTNAME %q, want the drain's token", kind, i, host)
			}
			if len(host) > 255 || len(app) > 48 || len(proc) > 128 {
				t.Errorf("%s frame %d: header fields over RFC 5424 limits: host %d, app %d, procid %d", kind, i, len(host), len(app), len(proc))
			}
			if i < len(texts) && !strings.Contains(deref(m.Message), strings.TrimFunc(firstWord(texts[i]), isSpace)) {
				t.Errorf("%s frame %d: message %q is not message %d", kind, i, deref(m.Message), i)
			}
		}
	}
	// OTLP: one request per drain (the whole batch fits one), decoded by the generated
	// types; one record per message, in order.
	var reqs []*drainpeer.OTLPRequest
	testenv.Until(t, "both OTLP drains got every message", func() bool {
		reqs = otel.Requests()
		n := 0
		for _, r := range reqs {
			n += len(r.Records)
		}
		return n >= 2*len(texts)
	})
	for _, r := range reqs {
		if r.Answer != (drainpeer.OTLPAnswer{}) || len(r.Records) != len(texts) {
			t.Errorf("OTLP request (path %q): %d records for %d messages, answered %+v", r.Path, len(r.Records), len(texts), r.Answer)
			continue
		}
		kind := "otlp+grpc"
		if r.Path != "" {
			kind = "otlp+http"
		}
		for i, rec := range r.Records {
			if rec.Resource["kubeplex.drain.token"] != tokens[kind] {
				t.Errorf("%s record %d: token %q", kind, i, rec.Resource["kubeplex.drain.token"])
			}
			if !strings.Contains(rec.Body, strings.TrimFunc(firstWord(texts[i]), isSpace)) {
				t.Errorf("%s record %d: body %q is not message %d", kind, i, rec.Body, i)
			}
			if len(rec.Attrs) != 2 || rec.Attrs["kubeplex.source"] != "app" || len(rec.Attrs["kubeplex.process"]) > 128 {
				t.Errorf("%s record %d: attributes %v (SD-like text must stay text)", kind, i, rec.Attrs)
			}
		}
	}
	if n := plain.Bad() + secure.Bad(); n != 0 {
		t.Errorf("%d frames the syslog sinks could not parse", n)
	}
	testenv.Until(t, "the victim's own line", func() bool { return len(victimSink.Messages()) >= 1 })
	for _, m := range victimSink.Messages() {
		if string(m.Text) != Line("victim", 0) {
			t.Errorf("the victim's drain got %q", m.Text)
		}
	}
	t.Logf("%d messages → %d frames at each of syslog, syslog+tls, http, https, %d records at each OTLP drain; victim's drain: %d message(s)",
		len(texts), len(texts), len(texts), len(victimSink.Messages()))
}

func httpRecords(rv *drainpeer.HTTPReceiver) [][]byte {
	var out [][]byte
	for _, r := range rv.Requests() {
		_, _ = wire.SplitFrames(r.Body, 1<<20, func(rec []byte) error {
			out = append(out, bytes.Clone(rec))
			return nil
		})
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func isSpace(r rune) bool { return r == ' ' || r == '\n' || r == '\r' || r == '\ufeff' }

// firstWord is the first printable ASCII word of a text, which every drain keeps as
// it was sent.
func firstWord(s string) string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' })
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
