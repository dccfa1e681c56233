package ingest_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"

	"github.com/kubeplex/kubeplex/internal/otlpin/otlptest"
	"github.com/kubeplex/kubeplex/router/ingest"
	"github.com/kubeplex/kubeplex/router/message"
)

func otlpServer(t *testing.T, e *env, limits ingest.Limits) string {
	t.Helper()
	srv := httptest.NewServer(ingest.NewOTLP(e.d, limits, e.m, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/logs"
}

func logsBody(service string, texts ...string) []byte {
	recs := make([]*logspb.LogRecord, 0, len(texts))
	for _, s := range texts {
		recs = append(recs, &logspb.LogRecord{SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN,
			Body:       otlptest.Str(s),
			Attributes: []*commonpb.KeyValue{otlptest.KV("k", "v")}})
	}
	rl := &logspb.ResourceLogs{ScopeLogs: []*logspb.ScopeLogs{{LogRecords: recs}}}
	if service != "" {
		rl.Resource = &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name",
			Value: otlptest.Str(service)}}}
	}
	b, _ := proto.Marshal(&logspb.LogsData{ResourceLogs: []*logspb.ResourceLogs{rl}})
	return b
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

// TestOTLPIngest: POST /v1/logs takes OTLP/HTTP with an app token (Bearer or Basic),
// files each record under the token's app and source with the service as process and
// the attributes as SD, and refuses what /logs would refuse.
func TestOTLPIngest(t *testing.T) {
	e := setup(t, ingest.Limits{})
	url := otlpServer(t, e, ingest.Limits{MaxFrame: 1000, MaxLine: 100, MaxBody: 64 << 10})

	resp, out := otlptest.Post(t, url, "application/x-protobuf", logsBody("checkout", "one", strings.Repeat("x", 250)), false, bearer(tokWeb))
	if resp.StatusCode != 200 || len(out) != 0 {
		t.Fatalf("Bearer export: %s %q", resp.Status, out)
	}
	resp, _ = otlptest.Post(t, url, "application/x-protobuf", logsBody("", "two"), true, basic(tokAPI))
	if resp.StatusCode != 200 {
		t.Fatalf("Basic gzip export: %s", resp.Status)
	}
	resp, out = otlptest.Post(t, url, "application/json",
		[]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"three"},"traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}]}]}]}`), false, bearer(tokAPI))
	if resp.StatusCode != 200 || strings.TrimSpace(string(out)) != "{}" {
		t.Fatalf("JSON export: %s %q", resp.Status, out)
	}

	// A record over --max-frame is refused alone, as a partial success.
	resp, out = otlptest.Post(t, url, "application/x-protobuf", logsBody("checkout", "four", strings.Repeat("y", 1001)), false, bearer(tokWeb))
	var er collogspb.ExportLogsServiceResponse
	if err := proto.Unmarshal(out, &er); resp.StatusCode != 200 || err != nil || er.GetPartialSuccess().GetRejectedLogRecords() != 1 {
		t.Fatalf("partial export: %s %q", resp.Status, out)
	}

	web := e.waitLines(t, "shop/web", 5)
	want := []string{"app[checkout] one", "app[checkout] " + strings.Repeat("x", 100), "app[checkout] " + strings.Repeat("x", 100),
		"app[checkout] " + strings.Repeat("x", 50), "app[checkout] four"}
	if fmt.Sprint(web) != fmt.Sprint(want) {
		t.Errorf("shop/web lines %q", web)
	}
	api := e.waitLines(t, "shop/api", 2)
	if fmt.Sprint(api) != fmt.Sprint([]string{"app[otlp] two", "app[otlp] three"}) {
		t.Errorf("shop/api lines %q", api)
	}
	a, _ := e.d.App("shop/web")
	a.History.Last(1, func(rec []byte) bool {
		m, _ := message.Decode(rec)
		if m.Priority != 188 || string(m.Attrs) != `[log@32473 k="v"][res@32473 service.name="checkout"]` {
			t.Errorf("record <%d> with attrs %q", m.Priority, m.Attrs)
		}
		return true
	})
	if got := counter(t, e, "otlp", "frame_too_large"); got != 1 {
		t.Errorf("frame_too_large = %v", got)
	}
}

func TestOTLPIngestRefusals(t *testing.T) {
	e := setup(t, ingest.Limits{})
	url := otlpServer(t, e, ingest.Limits{MaxBody: 1024})
	body := logsBody("s", "line")
	tests := []struct {
		name   string
		body   []byte
		ct     string
		auth   func(*http.Request)
		status int
		reason string
	}{
		{"no token", body, "application/x-protobuf", nil, 401, "unauthorized"},
		{"unknown token", body, "application/x-protobuf", bearer("t.00000000-0000-4000-8000-000000000000"), 401, "unauthorized"},
		{"kubeplex's own credential", body, "application/x-protobuf", bearer(tokPlatform), 401, "unauthorized"},
		{"malformed", []byte("\xff\xff"), "application/x-protobuf", bearer(tokWeb), 400, "malformed"},
		{"over --max-body", logsBody("s", strings.Repeat("z", 2000)), "application/x-protobuf", bearer(tokWeb), 413, "too_large"},
		{"not OTLP", []byte("12 not a frame"), "application/logplex-1", bearer(tokWeb), 415, "content_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(t, e, "otlp", tt.reason)
			resp, out := otlptest.Post(t, url, tt.ct, tt.body, false, tt.auth)
			if resp.StatusCode != tt.status || len(out) == 0 {
				t.Errorf("%s %q, want %d with a status body", resp.Status, out, tt.status)
			}
			if got := counter(t, e, "otlp", tt.reason); got != before+1 {
				t.Errorf("ingest_errors_total{reason=%q} %v -> %v", tt.reason, before, got)
			}
		})
	}
	if l := e.lines("shop/web"); len(l) != 0 {
		t.Errorf("refused requests left lines %q", l)
	}
}
