package ingest_test

import (
	"bytes"
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
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// A record's STRUCTURED-DATA is kept as its attributes: in history, and on the wire
// to a syslog drain and to a logplex-1 drain, byte for byte.
func TestAttributesReachDrains(t *testing.T) {
	sink := drainpeer.NewSyslogSink(t, nil)
	rv := drainpeer.NewHTTPReceiver(t, nil, nil)
	m := metrics.New()
	log := slog.New(slog.DiscardHandler)
	d := dispatch.New(dispatch.Options{Metrics: m, Logger: log,
		Dialer: &drain.Dialer{Policy: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}})
	tbl := routing.Table{Apps: []routing.App{{ID: "a/b", Tokens: []routing.Token{{Token: tokWeb, Source: "app"}},
		Drains: []routing.Drain{{ID: "a/s", Token: "d.s", URL: "syslog://" + sink.Addr}, {ID: "a/h", Token: "d.h", URL: rv.URL}}}}}
	tbl.Seal()
	if err := d.Apply(&tbl); err != nil {
		t.Fatal(err)
	}
	sl := ingest.NewSyslog(d, ingest.Limits{}, time.Minute, m, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = sl.ServeTCP(ln, "tcp") }()
	t.Cleanup(func() { _ = ln.Close(); sl.Shutdown() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // the test is over

	sd := `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" severity_text="WARN"][log@32473 k="a \"b\" \]"]`
	if _, err := c.Write(frames(
		"<188>1 2026-11-25T10:00:00.5Z h "+tokWeb+" web.1 - "+sd+" with attrs",
		"<190>1 2026-11-25T10:00:01Z h "+tokWeb+" web.1 - - without")); err != nil {
		t.Fatal(err)
	}
	for _, raw := range [][][]byte{waitRaw(t, sink.Raw, 2), waitRaw(t, func() [][]byte {
		var out [][]byte
		for _, r := range rv.Requests() {
			_, _ = wire.SplitFrames(r.Body, 64<<10, func(rec []byte) error { out = append(out, bytes.Clone(rec)); return nil })
		}
		return out
	}, 2)} {
		if f, err := wire.Scan(raw[0]); err != nil || string(f.StructuredData) != sd || string(f.Text) != "with attrs" {
			t.Errorf("first record %q: SD %q, %v", raw[0], f.StructuredData, err)
		}
		if f, err := wire.Scan(raw[1]); err != nil || f.StructuredData != nil || string(f.Text) != "without" {
			t.Errorf("second record %q: SD %q, %v", raw[1], f.StructuredData, err)
		}
	}
	a, _ := d.App("a/b")
	var got []string
	a.History.Last(10, func(rec []byte) bool {
		msg, _ := message.Decode(rec)
		got = append(got, string(msg.Attrs))
		return true
	})
	if fmt.Sprint(got) != fmt.Sprint([]string{sd, ""}) {
		t.Errorf("history attrs %q", got)
	}
}

func waitRaw(t *testing.T, get func() [][]byte, n int) [][]byte {
	t.Helper()
	var got [][]byte
	testenv.Until(t, fmt.Sprintf("%d records", n), func() bool { got = get(); return len(got) >= n })
	return got
}
