package otlp_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/drain/otlp"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// TestCollectorReceives checks the encoding against the OpenTelemetry Collector's own
// OTLP receiver, over each transport, with and without gzip and TLS: every record
// arrives once, in order, with body, time, severity, attributes, the drain token and
// the headers.
func TestCollectorReceives(t *testing.T) {
	ca := testenv.NewCA(t)
	plain := drainpeer.StartCollector(t, drainpeer.CollectorOptions{Headers: []string{"x-api-key"}})
	secure := drainpeer.StartCollector(t, drainpeer.CollectorOptions{Cert: ca, Headers: []string{"x-api-key"}})
	tlsOpts := &routing.TLS{CAPEM: string(ca.PEM), ServerName: "otel.test"}
	tests := []struct {
		name        string
		url         string
		tls         *routing.TLS
		compression string
		col         *drainpeer.Collector
	}{
		{"http gzip", "otlp+http://" + plain.HTTPAddr, nil, "", plain},
		{"http none", "otlp+http://" + plain.HTTPAddr + "/v1/logs", nil, routing.CompressionNone, plain},
		{"grpc gzip", "otlp+grpc://" + plain.GRPCAddr, nil, routing.CompressionGzip, plain},
		{"grpc none", "otlp+grpc://" + plain.GRPCAddr, nil, routing.CompressionNone, plain},
		{"https with CA", "otlp+https://" + secure.HTTPAddr, tlsOpts, "", secure},
		{"grpcs with CA", "otlp+grpcs://" + secure.GRPCAddr, tlsOpts, "", secure},
	}
	const n = 60
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.col.Records(t))
			key := "key-" + strings.ReplaceAll(tt.name, " ", "-")
			h := start(t, routing.Drain{URL: tt.url, TLS: tt.tls, Compression: tt.compression,
				Headers: map[string]string{"x-api-key": key}}, otlp.Options{})
			pris := []uint8{190, 187, 188, 191, 184, 189}
			for i := range n {
				h.push(i, 1, pris[i%len(pris)])
			}
			got := tt.col.WaitRecords(t, before+n)[before:]
			if len(got) != n {
				t.Fatalf("%d records, want %d", len(got), n)
			}
			wantSev := map[uint8]struct {
				num  int32
				text string
			}{190: {9, "INFORMATIONAL"}, 187: {17, "ERROR"}, 188: {13, "WARNING"}, 191: {5, "DEBUG"}, 184: {21, "EMERGENCY"}, 189: {10, "NOTICE"}}
			for i, r := range got {
				sev := wantSev[pris[i%len(pris)]]
				if r.Body != fmt.Sprint("line ", i) || !r.Time().Equal(at.Add(time.Duration(i)*time.Microsecond)) ||
					r.SeverityNumber != sev.num || r.SeverityText != sev.text || r.Scope != otlp.ScopeName || r.Observed == 0 {
					t.Fatalf("record %d = %+v", i, r)
				}
				if r.Resource["service.name"] != "web" || r.Resource["k8s.namespace.name"] != "shop" ||
					r.Resource["kubeplex.app"] != "shop/web" || r.Resource["kubeplex.drain.token"] != token {
					t.Fatalf("record %d resource %v", i, r.Resource)
				}
				if r.Attributes["kubeplex.source"] != "app" || r.Attributes["kubeplex.process"] != fmt.Sprintf("web.%d", i%3+1) {
					t.Fatalf("record %d attributes %v", i, r.Attributes)
				}
				if r.Headers["x-api-key"] != key {
					t.Fatalf("record %d came with headers %v", i, r.Headers)
				}
			}
			testenv.Until(t, "delivered counted", func() bool { return h.stats.Delivered.Load() == n })
		})
	}
}

// TestCollectorRetriesAndL10: a fault in front of the Collector answers 503 with
// Retry-After, then 400. The 503 batch is retried and arrives once; the 400 batch is
// dropped and the Collector receives the L10 notice for it as a LogRecord.
func TestCollectorRetriesAndL10(t *testing.T) {
	col := drainpeer.StartCollector(t, drainpeer.CollectorOptions{})
	target, _ := url.Parse("http://" + col.HTTPAddr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var calls, fault atomic.Int64
	fault.Store(503)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if code := fault.Swap(0); code != 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(int(code))
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go func() { _ = front.Serve(ln) }()
	t.Cleanup(func() { _ = front.Close() })

	h := start(t, routing.Drain{URL: "otlp+http://" + ln.Addr().String()}, otlp.Options{})
	h.push(0, 5, 190)
	got := col.WaitRecords(t, 5)
	if calls.Load() != 2 || got[0].Body != "line 0" || got[4].Body != "line 4" {
		t.Fatalf("%d calls, records %v", calls.Load(), got)
	}

	fault.Store(400)
	h.push(5, 3, 190)
	testenv.Until(t, "refused batch counted", func() bool { return h.stats.Dropped.Load() == 3 })
	h.push(8, 2, 190)
	got = col.WaitRecords(t, 8)[5:]
	if !strings.HasPrefix(got[0].Body, "Error L10 (output buffer overflow): 3 messages dropped since ") ||
		got[0].SeverityText != "ERROR" || got[0].Attributes["kubeplex.source"] != "kubeplex" || got[0].Attributes["kubeplex.process"] != "router" {
		t.Errorf("first record after the refusal %+v, want the L10 notice", got[0])
	}
	bodies := make([]string, 0, len(got)-1)
	for _, r := range got[1:] {
		bodies = append(bodies, r.Body)
	}
	if strings.Join(bodies, "|") != "line 8|line 9" {
		t.Errorf("then %q", bodies)
	}
	testenv.Until(t, "accounting", func() bool { return h.stats.Delivered.Load() == 7 && h.stats.Announced.Load() == 3 })
}
