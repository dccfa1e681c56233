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

// benchBatch is a full batch of lines as the bench harness writes them.
func benchBatch(n int) *drain.Batch {
	b := &drain.Batch{}
	host := message.Host(token)
	for i := range n {
		rec := message.AppendWireStrings(nil, wire.PriorityInfo, at.Add(time.Duration(i)*time.Microsecond), "app",
			fmt.Sprintf("web.%d", i%3+1), fmt.Sprintf("line %d of the benchmark, a typical short log line with some words", i))
		b.AddRecord(rec, host)
	}
	return b
}

// BenchmarkDeliverHTTP: one OTLP/HTTP export of 1024 records per op into a receiver
// that reads and discards the body.
func BenchmarkDeliverHTTP(b *testing.B) {
	for _, comp := range []string{routing.CompressionGzip, routing.CompressionNone} {
		b.Run(comp, func(b *testing.B) {
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
			batch := benchBatch(1024)
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
