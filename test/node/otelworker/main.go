// Command otelworker is the node suite's OpenTelemetry worker image (test/node): an
// app that logs only through the OpenTelemetry Go SDK and its OTLP/HTTP log exporter
// (otlploghttp), created with no endpoint, protocol or TLS option, so that where its
// records go comes from the environment alone, as for any app built on the SDK's
// defaults. In a kubeplex pod that environment is what the webhook injects
// (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, _PROTOCOL) to reach the collector's loopback
// OTLP input.
//
//	otelworker -prefix o1 -records 12
//
// Record i (from 1) has the body "<prefix> record <i>", a severity that cycles
// through INFO, WARN and ERROR (i%3 = 1, 2, 0), and the attributes record.index=i
// and order.id="A-<i>"; the logger (instrumentation scope) is "shop/checkout". Each
// record is exported before the next is made (the SDK's simple processor), then the
// worker writes "<prefix> exported <n>" to stdout and waits for SIGTERM. An export
// error goes to stderr as "<prefix> export error: …" (the SDK's error handler), and
// the worker exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

func main() {
	prefix := flag.String("prefix", "otel", "first word of every record's body")
	records := flag.Int("records", 10, "log records to export")
	flag.Parse()

	failed := false
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		failed = true
		fmt.Fprintf(os.Stderr, "%s export error: %v\n", *prefix, err)
	}))
	ctx := context.Background()
	// No options: endpoint, protocol and security come from OTEL_EXPORTER_OTLP_*.
	exp, err := otlploghttp.New(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s export error: %v\n", *prefix, err)
		os.Exit(1)
	}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	logger := lp.Logger("shop/checkout")
	severities := []struct {
		n    otellog.Severity
		text string
	}{{otellog.SeverityError, "ERROR"}, {otellog.SeverityInfo, "INFO"}, {otellog.SeverityWarn, "WARN"}}
	for i := 1; i <= *records; i++ {
		var r otellog.Record
		sev := severities[i%3]
		r.SetSeverity(sev.n)
		r.SetSeverityText(sev.text)
		r.SetBody(attribute.StringValue(fmt.Sprintf("%s record %d", *prefix, i)))
		r.AddAttributes(attribute.Int("record.index", i), attribute.String("order.id", fmt.Sprintf("A-%d", i)))
		logger.Emit(ctx, r)
	}
	if err := lp.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s export error: %v\n", *prefix, err)
		failed = true
	}
	if failed {
		os.Exit(1)
	}
	fmt.Printf("%s exported %d\n", *prefix, *records)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
