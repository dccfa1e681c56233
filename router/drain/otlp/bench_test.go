package otlp_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drain/otlp"
	"github.com/kubeplex/kubeplex/router/message"
)

// benchBatch is a full batch of lines as the bench harness writes them; with origin,
// as a collector's (its pod and node), for a drain that keeps origins.
func benchBatch(n int, origin []byte) *drain.Batch {
	b := &drain.Batch{}
	if origin != nil {
		b.KeepOrigins()
	}
	host := message.Host(token)
	for i := range n {
		m := message.Msg{Priority: wire.PriorityInfo, Time: at.Add(time.Duration(i) * time.Microsecond).UnixMicro(), Source: []byte("app"),
			ProcID: fmt.Appendf(nil, "web.%d", i%3+1), Text: fmt.Appendf(nil, "line %d of the benchmark, a typical short log line with some words", i)}
		b.AddRecord(message.AppendWireOrigin(nil, &m, origin), host)
	}
	return b
}

// BenchmarkDeliverHTTP: one OTLP/HTTP export of 1024 records per op into a receiver
// that reads and discards the body.
func BenchmarkDeliverHTTP(b *testing.B) {
	pod := message.AppendOrigin(nil, "web-7d9f8b6c5d-x2kq4", "ip-10-0-12-34.eu-west-1.compute.internal")
	for _, c := range []struct {
		comp   string
		origin []byte
	}{{routing.CompressionGzip, nil}, {routing.CompressionNone, nil}, {routing.CompressionGzip, pod}, {routing.CompressionNone, pod}} {
		comp, name := c.comp, c.comp
		if c.origin != nil {
			name += "/pod"
		}
		b.Run(name, func(b *testing.B) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
			}))
			defer srv.Close()
			u, _ := url.Parse("otlp+http://" + strings.TrimPrefix(srv.URL, "http://"))
			cfg := &drain.Config{Drain: routing.Drain{ID: "shop/d", Token: token, URL: u.String(), Compression: comp}, App: "shop/web", URL: u}
			s, err := otlp.New(cfg, drain.Env{Dialer: &drain.Dialer{Policy: loopback}, Logger: slog.New(slog.DiscardHandler)}, otlp.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			batch := benchBatch(1024, c.origin)
			b.SetBytes(int64(batch.Size()))
			b.ReportAllocs()
			for b.Loop() {
				if n, err := s.Deliver(context.Background(), batch); n != batch.Len() || err != nil {
					b.Fatal(n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch.Len()), "ns/record")
		})
	}
}
