// Command otelcol-sink runs the OpenTelemetry Collector's own OTLP receiver
// (go.opentelemetry.io/collector/receiver/otlpreceiver) and writes every log record
// it accepts as one JSON line, so kubeplex's tests can check the encoding of OTLP
// drains against the reference implementation rather than against themselves. It is
// a separate Go module so the main module does not carry the Collector's
// dependencies; the tests build it once into bin/ (see router/drain/otlp).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

// Record is one received log record, as the tests read it.
type Record struct {
	// Request numbers the export call the record came in (1-based).
	Request        int               `json:"request"`
	Resource       map[string]string `json:"resource"`
	Scope          string            `json:"scope"`
	ScopeVersion   string            `json:"scopeVersion,omitempty"`
	ScopeAttrs     map[string]string `json:"scopeAttributes,omitempty"`
	TraceID        string            `json:"traceId,omitempty"`
	SpanID         string            `json:"spanId,omitempty"`
	Flags          uint32            `json:"flags,omitempty"`
	EventName      string            `json:"eventName,omitempty"`
	TimeUnixNano   uint64            `json:"timeUnixNano"`
	Observed       uint64            `json:"observedTimeUnixNano"`
	SeverityNumber int32             `json:"severityNumber"`
	SeverityText   string            `json:"severityText"`
	Body           string            `json:"body"`
	Attributes     map[string]string `json:"attributes"`
	// Headers are the request headers (gRPC metadata) named by -headers.
	Headers map[string]string `json:"headers,omitempty"`
}

func main() {
	httpAddr := flag.String("http", "", "OTLP/HTTP listen address (empty: off)")
	grpcAddr := flag.String("grpc", "", "OTLP/gRPC listen address (empty: off)")
	cert := flag.String("cert", "", "TLS certificate file (both protocols)")
	key := flag.String("key", "", "TLS key file")
	out := flag.String("out", "", "file to append JSON lines to (required)")
	headers := flag.String("headers", "", "comma-separated request headers to record")
	flag.Parse()
	if err := run(*httpAddr, *grpcAddr, *cert, *key, *out, *headers); err != nil {
		fmt.Fprintln(os.Stderr, "otelcol-sink:", err)
		os.Exit(1)
	}
}

func run(httpAddr, grpcAddr, cert, key, out, headers string) error {
	if out == "" || (httpAddr == "" && grpcAddr == "") {
		return fmt.Errorf("need -out and -http or -grpc")
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()

	protocols := map[string]any{}
	for name, addr := range map[string]string{"http": httpAddr, "grpc": grpcAddr} {
		if addr == "" {
			continue
		}
		p := map[string]any{"endpoint": addr, "include_metadata": true}
		if cert != "" {
			p["tls"] = map[string]any{"cert_file": cert, "key_file": key}
		}
		protocols[name] = p
	}
	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig()
	if err := confmap.NewFromStringMap(map[string]any{"protocols": protocols}).Unmarshal(cfg); err != nil {
		return fmt.Errorf("configure receiver: %w", err)
	}

	var mu sync.Mutex
	requests := 0
	enc := json.NewEncoder(f)
	var wanted []string
	if headers != "" {
		wanted = strings.Split(headers, ",")
	}
	sink, err := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		info := client.FromContext(ctx)
		hdr := map[string]string{}
		for _, h := range wanted {
			if v := info.Metadata.Get(h); len(v) > 0 {
				hdr[h] = strings.Join(v, ",")
			}
		}
		mu.Lock()
		defer mu.Unlock()
		requests++
		for _, rl := range ld.ResourceLogs().All() {
			res := attrs(rl.Resource().Attributes())
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					r := Record{Request: requests, Resource: res, Scope: sl.Scope().Name(), ScopeVersion: sl.Scope().Version(),
						ScopeAttrs: attrs(sl.Scope().Attributes()), Flags: uint32(lr.Flags()), EventName: lr.EventName(),
						TimeUnixNano: uint64(lr.Timestamp()), Observed: uint64(lr.ObservedTimestamp()),
						SeverityNumber: int32(lr.SeverityNumber()), SeverityText: lr.SeverityText(),
						Body: lr.Body().AsString(), Attributes: attrs(lr.Attributes()), Headers: hdr}
					if !lr.TraceID().IsEmpty() {
						r.TraceID = lr.TraceID().String()
					}
					if !lr.SpanID().IsEmpty() {
						r.SpanID = lr.SpanID().String()
					}
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rcv, err := factory.CreateLogs(ctx, receivertest.NewNopSettings(factory.Type()), cfg, sink)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	if err := rcv.Start(ctx, componenttest.NewNopHost()); err != nil {
		return fmt.Errorf("start receiver: %w", err)
	}
	fmt.Println("otelcol-sink ready")
	<-ctx.Done()
	return rcv.Shutdown(context.Background())
}

func attrs(m pcommon.Map) map[string]string {
	out := make(map[string]string, m.Len())
	for k, v := range m.All() {
		out[k] = v.AsString()
	}
	return out
}
