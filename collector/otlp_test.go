package collector_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kubeplex/kubeplex/collector/internal/fakerouter"
	"github.com/kubeplex/kubeplex/internal/otlpin/otlptest"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// TestTraceOTLP: OTLP/HTTP logs (protobuf and JSON, gzip or not) become lines of
// source app and the sidecar's process, with their attributes as SD; syslog SD
// passes through too; a malformed body is a 400 and a long record a partial success.
func TestTraceOTLP(t *testing.T) {
	r := fakerouter.Start(t, token)
	otlpAddr := testenv.FreeAddr(t)
	sc := startSidecar(t, []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_PROCESS=web.1", "KUBEPLEX_TRACE_SYSLOG_ADDR=127.0.0.1:0", "KUBEPLEX_TRACE_HTTP_ADDR=",
		"KUBEPLEX_TRACE_OTLP_ADDR=" + otlpAddr})
	url := "http://" + otlpAddr + "/v1/logs"
	data := &logspb.LogsData{ResourceLogs: []*logspb.ResourceLogs{{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
		{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_ERROR, Body: otlptest.Str("otlp protobuf"),
			Attributes: []*commonpb.KeyValue{otlptest.KV("k", "v")}},
		{Body: otlptest.Str(strings.Repeat("x", 70000))},
	}}}}}}
	body, _ := proto.Marshal(data)
	resp, out := otlptest.Post(t, url, "application/x-protobuf", body, true, nil)
	var er collogspb.ExportLogsServiceResponse
	if err := proto.Unmarshal(out, &er); resp.StatusCode != 200 || err != nil || er.GetPartialSuccess().GetRejectedLogRecords() != 1 {
		t.Errorf("protobuf export: %s %q", resp.Status, out)
	}
	resp, out = otlptest.Post(t, url, "application/json",
		[]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityText":"WARN","body":{"stringValue":"otlp json"},"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}]}]}]}`), false, nil)
	if resp.StatusCode != 200 || strings.TrimSpace(string(out)) != "{}" {
		t.Errorf("JSON export: %s %q", resp.Status, out)
	}
	if resp, out := otlptest.Post(t, url, "application/x-protobuf", []byte("\xff\xff"), false, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed export: %s %q", resp.Status, out)
	}
	c, err := net.Dial("udp", sc.syslog)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte(`<134>1 2026-11-25T10:00:00Z h a - - [x@32473 a="b"] syslog sd`))
	_ = c.Close() // one datagram
	want := map[string]struct {
		pri uint8
		sd  string
	}{
		"otlp protobuf": {187, `[log@32473 k="v"]`},
		"otlp json":     {188, `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" severity_text="WARN"]`},
		"syslog sd":     {134, `[x@32473 a="b"]`},
	}
	r.WaitFor(30*time.Second, "OTLP and syslog lines", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "web.1", 0)) >= len(want)
	})
	sc.stop(t)
	for _, rec := range r.Records() {
		if rec.AppName != "app" {
			continue
		}
		w, ok := want[string(rec.Text)]
		if !ok || rec.ProcID != "web.1" || rec.Priority != w.pri || string(rec.StructuredData) != w.sd {
			t.Errorf("line <%d> %s %s %s %.40q, want %+v", rec.Priority, rec.AppName, rec.ProcID, rec.StructuredData, rec.Text, w)
		}
		delete(want, string(rec.Text))
	}
	if len(want) > 0 {
		t.Errorf("missing %v", want)
	}
}

// TestTraceOTLPPortTaken: when another process of the pod holds the OTLP port, the
// sidecar still serves everything else and says so, in its log and in the app's stream.
func TestTraceOTLPPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() }) // the test is over
	r := fakerouter.Start(t, token)
	sc := startSidecar(t, []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN=" + token,
		"KUBEPLEX_PROCESS=web.1", "KUBEPLEX_TRACE_SYSLOG_ADDR=127.0.0.1:0", "KUBEPLEX_TRACE_HTTP_ADDR=",
		"KUBEPLEX_TRACE_OTLP_ADDR=" + ln.Addr().String()})
	c, err := net.Dial("udp", sc.syslog)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("<134>1 - h a - - - still served"))
	_ = c.Close() // one datagram
	r.WaitFor(30*time.Second, "the warning and the syslog line", func(recs []fakerouter.Record) bool {
		return len(appTexts(recs, "web.1", 0)) >= 1 && len(eventsOf(recs, "web.1")) >= 1
	})
	sc.stop(t)
	ev := eventsOf(r.Records(), "web.1")
	if !strings.Contains(ev[0], "OTLP/HTTP logs input off: "+ln.Addr().String()+" is already taken") {
		t.Errorf("event %q", ev[0])
	}
	if !strings.Contains(sc.stderr.String(), "OTLP/HTTP logs input off") {
		t.Errorf("sidecar log lacks the reason:\n%s", sc.stderr.String())
	}
}
