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
// attributes (trace and span id, record and resource attributes) as SD, and at an
// OTLP drain into the OpenTelemetry Collector's own OTLP receiver as LogRecords with
// those fields, attributes and instrumentation scope back in their places. The same
// exporter with an app token reaches the router's own POST /v1/logs.
func TestOTLPFromSDKThroughCollector(t *testing.T) {
	bins, cleanup, err := testenv.Build("github.com/kubeplex/kubeplex/cmd/collector")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	sink := peer.NewSyslogSink(t, nil)
	col := peer.StartCollector(t, peer.CollectorOptions{})
	const otlpDrainToken = "d.5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
	routes := writeTable(t, routing.Table{Apps: []routing.App{{
		ID:     "shop/web",
		Tokens: []routing.Token{{Token: collectorToken, Source: "app", Collector: true}, {Token: ingestToken, Source: "app"}},
		Drains: []routing.Drain{{ID: "shop/tcp", Token: drainToken, URL: "syslog://" + sink.Addr},
			{ID: "shop/otel", Token: otlpDrainToken, URL: "otlp+http://" + col.HTTPAddr}},
	}}})
	addr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	testenv.Start(t, routerBin, nil, "--http-addr", addr, "--admin-addr", adminAddr, "--routes", routes, "--allow-cidrs", "127.0.0.0/8")
	testenv.WaitHTTP(t, "http://"+addr+"/readyz")

	otlpAddr := testenv.FreeAddr(t)
	// The pod and node as the webhook's downward API gives them to the sidecar.
	testenv.Start(t, bins["collector"], []string{"KUBEPLEX_ROUTER_URL=http://" + addr + "/logs", "KUBEPLEX_TOKEN=" + collectorToken,
		"KUBEPLEX_PROCESS=web.1", "KUBEPLEX_TRACE_SYSLOG_ADDR=", "KUBEPLEX_TRACE_HTTP_ADDR=", "KUBEPLEX_TRACE_OTLP_ADDR=" + otlpAddr,
		"KUBEPLEX_POD_NAME=web-7d9f8-x2kq4", "KUBEPLEX_NODE_NAME=node-a"}, "sidecar")
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
		logger := lp.Logger("shop/pay", otellog.WithInstrumentationVersion("1.2"),
			otellog.WithInstrumentationAttributes(attribute.String("lib.flavour", "plain")))
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

	// The same SDK straight to the router's ingest, as an add-on provider would: the
	// app token in the Authorization header the exporter is given.
	exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpoint(addr), otlploghttp.WithInsecure(),
		otlploghttp.WithHeaders(map[string]string{"Authorization": "Bearer " + ingestToken}))
	if err != nil {
		t.Fatal(err)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)),
		sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "pgbackups"))))
	var r otellog.Record
	r.SetSeverity(otellog.SeverityInfo)
	r.SetBody(attribute.StringValue("backup done"))
	lp.Logger("addon").Emit(ctx, r)
	if err := lp.Shutdown(ctx); err != nil {
		t.Fatalf("SDK export to the router: %v", err)
	}

	msgs := sink.WaitFor(t, 5)
	// The collector ships on its own clock (250 ms batches): order across paths is free.
	byText := map[string]int{}
	for i, m := range msgs {
		byText[string(m.Text)] = i
	}
	raw := sink.Raw()
	for _, comp := range []int{0, 1} {
		i, ok := byText[fmt.Sprintf("payment declined (%d)", comp)]
		if !ok {
			t.Fatalf("record %d missing: %v", comp, byText)
		}
		m := msgs[i]
		if m.Priority != wire.PriorityWarning || m.AppName != "app" || m.ProcID != "web.1" || m.Hostname != drainToken ||
			!m.Time.Equal(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)) {
			t.Errorf("record %q: %+v", m.Text, m)
		}
		f, err := wire.Scan(raw[i])
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
	}
	plain := 0
	for _, m := range msgs {
		if string(m.Text) == `{"k":"v"}` {
			plain++
			if m.Priority != wire.PriorityError || m.AppName != "app" || m.ProcID != "web.1" || time.Since(m.Time) > 10*time.Minute {
				t.Errorf("record without time: <%d> %s[%s] at %s", m.Priority, m.AppName, m.ProcID, m.Time)
			}
		}
	}
	if plain != 2 {
		t.Errorf("%d map-body records, want 2", plain)
	}
	if i, ok := byText["backup done"]; !ok || msgs[i].AppName != "app" || msgs[i].ProcID != "pgbackups" || msgs[i].Priority != wire.PriorityInfo {
		t.Errorf("router OTLP ingest: %+v", msgs[min(i, len(msgs)-1)])
	}
	if sink.Bad() != 0 {
		t.Errorf("%d frames a strict parser refused", sink.Bad())
	}
	// The syslog drain's frames do not carry the pod and node (only OTLP drains do).
	for _, r := range raw {
		if strings.Contains(string(r), "node-a") || strings.Contains(string(r), "x2kq4") {
			t.Errorf("syslog frame carries the origin: %q", r)
		}
	}

	// The OTLP drain: the same five records, each field where OTLP keeps it.
	recs := col.WaitRecords(t, 5)
	got := map[string]peer.CollectorRecord{}
	for _, r := range recs {
		got[r.Body] = r
	}
	for _, comp := range []int{0, 1} {
		r, ok := got[fmt.Sprintf("payment declined (%d)", comp)]
		if !ok {
			t.Fatalf("record %d missing at the OTLP drain: %v", comp, recs)
		}
		want := peer.CollectorRecord{Request: r.Request, Observed: r.Observed,
			Resource: map[string]string{"service.name": "web", "k8s.namespace.name": "shop", "kubeplex.app": "shop/web",
				"kubeplex.drain.token": otlpDrainToken, "k8s.pod.name": "web-7d9f8-x2kq4", "k8s.node.name": "node-a"},
			Scope: "shop/pay", ScopeVersion: "1.2", ScopeAttrs: map[string]string{"lib.flavour": "plain"},
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", Flags: 1,
			TimeUnixNano:   uint64(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC).UnixNano()),
			SeverityNumber: 13, SeverityText: "WARN", Body: r.Body,
			Attributes: map[string]string{"user.id": "42", "note": `say "hi"`, "kubeplex.source": "app", "kubeplex.process": "web.1"},
		}
		if fmt.Sprint(r) != fmt.Sprint(want) {
			t.Errorf("OTLP drain record\n got %+v\nwant %+v", r, want)
		}
	}
	// kubeplex's own resource attributes win over the producer's service.name; the
	// producer's is the process (web.1 here, the router ingest's pgbackups below).
	// Straight to the router, no collector vouches for a pod or node.
	if r := got["backup done"]; r.Attributes["kubeplex.process"] != "pgbackups" || r.Scope != "addon" || r.SeverityNumber != 9 ||
		r.Resource["k8s.pod.name"] != "" || r.Resource["k8s.node.name"] != "" {
		t.Errorf("router OTLP ingest at the OTLP drain: %+v", r)
	}
	if r := got[`{"k":"v"}`]; r.SeverityNumber != 17 || r.Scope != "shop/pay" || r.Resource["k8s.pod.name"] != "web-7d9f8-x2kq4" {
		t.Errorf("map-body record at the OTLP drain: %+v", r)
	}
}
