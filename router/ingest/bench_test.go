package ingest_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drainpeer"
	"github.com/kubeplex/kubeplex/router/ingest"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// BenchmarkSyslogRelay measures TCP in → history + one syslog drain → TCP out, with
// allocations, in one process. Writes are small (10 frames) as at moderate rates.
func BenchmarkSyslogRelay(b *testing.B) {
	sink := drainpeer.NewSyslogSink(b, nil)
	m := metrics.New()
	log := slog.New(slog.DiscardHandler)
	d := dispatch.New(dispatch.Options{Metrics: m, Logger: log,
		Dialer: &drain.Dialer{Policy: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}})
	tbl := routing.Table{Apps: []routing.App{{ID: "a/b", Tokens: []routing.Token{{Token: tokWeb, Source: "app"}},
		Drains: []routing.Drain{{ID: "a/d", Token: "d.x", URL: "syslog://" + sink.Addr}}}}}
	tbl.Seal()
	if err := d.Apply(&tbl); err != nil {
		b.Fatal(err)
	}
	sl := ingest.NewSyslog(d, ingest.Limits{}, time.Minute, m, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = sl.ServeTCP(ln, "tcp") }()
	defer func() { _ = ln.Close() }() // the benchmark is over
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the benchmark is over
	var chunk []byte
	for i := range 10 {
		chunk = wire.AppendFrame(chunk, fmt.Appendf(nil, "<190>1 2026-11-25T10:00:00.123456+00:00 h %s web.1 - - line %d %0120d", tokWeb, i, 0))
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
		n += 10
	}
	// Every message is accounted for (the test sink parses slowly, so some may drop).
	testenv.Eventually(b, "every message delivered or dropped", func() error {
		if st := d.Status().Drains["a/d"]; st.Delivered+st.Dropped != int64(n) {
			return fmt.Errorf("delivered %d + dropped %d != %d", st.Delivered, st.Dropped, n)
		}
		return nil
	})
	st := d.Status().Drains["a/d"]
	b.ReportMetric(float64(st.Dropped)/float64(n), "dropped/msg")
}
