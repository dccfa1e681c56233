package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	peer "github.com/kubeplex/kubeplex/router/drainpeer"
)

const collectorToken = "c.7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

// TestOTLPFromSDKThroughCollector: an app logs with the OpenTelemetry Go SDK and its
// OTLP/HTTP log exporter, configured with nothing but the collector's address (on a
// pod that is the SDK's default, localhost:4318; this shared host picks a free port).
// The records arrive at a syslog drain through the collector sidecar and the router
// as lines of source app and the container's process, with severity, time, body and
// attributes (trace and span id, record and resource attributes) as SD.
func TestOTLPFromSDKThroughCollector(t *testing.T) {
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/collector")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	sink := peer.NewSyslogSink(t, nil)
	routes := writeTable(t, routing.Table{Apps: []routing.App{{
		ID:     "shop/web",
		Tokens: []routing.Token{{Token: collectorToken, Source: "app", Collector: true}},
		Drains: []routing.Drain{{ID: "shop/tcp", Token: drainToken, URL: "syslog://" + sink.Addr}},
	}}})
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	testenv.Start(t, routerBin, nil, "--http-addr", addr, "--admin-addr", adminAddr, "--routes", routes, "--allow-cidrs", "127.0.0.0/8")
	testenv.WaitHTTP(t, "http://"+addr+"/readyz")

	otlpAddr := testenv.FreeAddr(t)
	testenv.Start(t, bins["collector"], []string{"KUBEPLEX_ROUTER_URL=http://" + addr + "/logs", "KUBEPLEX_TOKEN=" + collectorToken,
		"KUBEPLEX_PROCESS=web.1", "KUBEPLEX_TRACE_SYSLOG_ADDR=", "KUBEPLEX_TRACE_HTTP_ADDR=", "KUBEPLEX_TRACE_OTLP_ADDR=" + otlpAddr}, "sidecar")
	testenv.Until(t, "collector serves OTLP/HTTP", func() bool {
		c, err := net.Dial("tcp", otlpAddr)
		if err == nil {
			_ = c.Close() // only the listener mattered
		}
		return err == nil
	})

	ctx := context.Background()
	for _, compression := range []otlploghttp.Compression{otlploghttp.NoCompression, otlploghttp.GzipCompression} {
		exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(otlpAddr), otlploghttp.WithInsecure(), otlploghttp.WithCompression(compression))
		if err != nil {
			t.Fatal(err)
		}
		lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)),
			sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "checkout"))))
		logger := lp.Logger("shop/pay")
		tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
		sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
		sctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))

		var r otellog.Record
		r.SetTimestamp(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC))
		r.SetSeverity(otellog.SeverityWarn)
		r.SetSeverityText("WARN")
		r.SetBody(attribute.StringValue(fmt.Sprintf("payment declined (%d)", compression)))
		r.AddAttributes(attribute.Int("user.id", 42), attribute.String("note", `say "hi"`))
		logger.Emit(sctx, r)

		var plain otellog.Record // no time: the SDK's observed time stands in
		plain.SetSeverity(otellog.SeverityError)
		plain.SetBody(attribute.MapValue(attribute.String("k", "v")))
		logger.Emit(ctx, plain)
		if err := lp.Shutdown(ctx); err != nil {
			t.Fatalf("SDK export: %v", err)
		}
	}

	msgs := sink.WaitFor(t, 4)
	for i, comp := range []int{0, 1} {
		m, p := msgs[2*i], msgs[2*i+1]
		if m.Priority != wire.PriorityWarning || m.AppName != "app" || m.ProcID != "web.1" || m.Hostname != drainToken ||
			string(m.Text) != fmt.Sprintf("payment declined (%d)", comp) ||
			!m.Time.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)) {
			t.Errorf("record %d: %+v", 2*i, m)
		}
		if p.Priority != wire.PriorityError || p.AppName != "app" || string(p.Text) != `{"k":"v"}` || time.Since(p.Time) > 10*time.Minute {
			t.Errorf("record %d: <%d> %s %q at %s", 2*i+1, p.Priority, p.AppName, p.Text, p.Time)
		}
	}
	raw := sink.Raw()
	f, err := wire.Scan(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	sd := string(f.StructuredData)
	for _, want := range []string{`[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" span_id="00f067aa0ba902b7" flags="01" severity_text="WARN" scope.name="shop/pay"`,
		`[log@32473 user.id="42" note="say \"hi\""]`, `service.name="checkout"`} {
		if !strings.Contains(sd, want) {
			t.Errorf("SD %s lacks %s", sd, want)
		}
	}
	if sink.Bad() != 0 {
		t.Errorf("%d frames a strict parser refused", sink.Bad())
	}
}
