package drainpeer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// CollectorRecord is one log record the OpenTelemetry Collector's OTLP receiver
// accepted (test/otelcol writes them as JSON lines).
type CollectorRecord struct {
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
	Headers        map[string]string `json:"headers"`
}

// Time is the record's timestamp.
func (r CollectorRecord) Time() time.Time { return time.Unix(0, int64(r.TimeUnixNano)) }

// Collector is the OpenTelemetry Collector's OTLP receiver (otlpreceiver, built from
// test/otelcol) listening on 127.0.0.1.
type Collector struct {
	HTTPAddr, GRPCAddr string
	out                string
}

// CollectorOptions: Cert serves both protocols over TLS; Headers are request
// headers (gRPC metadata) recorded with each record.
type CollectorOptions struct {
	Cert    *testenv.CA
	Headers []string
}

// StartCollector builds (once, cached in bin/) and starts the receiver.
func StartCollector(t testing.TB, o CollectorOptions) *Collector {
	t.Helper()
	bin, err := testenv.BuildModule("test/otelcol", "otelcol-sink")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &Collector{HTTPAddr: testenv.FreeAddr(t), GRPCAddr: testenv.FreeAddr(t), out: filepath.Join(dir, "records.jsonl")}
	args := []string{"-http", c.HTTPAddr, "-grpc", c.GRPCAddr, "-out", c.out, "-headers", strings.Join(o.Headers, ",")}
	if o.Cert != nil {
		certFile, keyFile := testenv.WriteKeyPair(t, dir, o.Cert.Server(t, "otel.test"))
		args = append(args, "-cert", certFile, "-key", keyFile)
	}
	p := testenv.Start(t, bin, nil, args...)
	testenv.Until(t, "collector ready", func() bool {
		select {
		case <-p.Exited():
			t.Fatalf("collector exited:\n%s", p.Out.String())
		default:
		}
		return strings.Contains(p.Out.String(), "otelcol-sink ready")
	})
	return c
}

// Records returns what the collector accepted so far, in order.
func (c *Collector) Records(t testing.TB) []CollectorRecord {
	t.Helper()
	b, err := os.ReadFile(c.out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []CollectorRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r CollectorRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			break // a line being written
		}
		out = append(out, r)
	}
	return out
}

// WaitRecords waits until the collector accepted at least n records.
func (c *Collector) WaitRecords(t testing.TB, n int) []CollectorRecord {
	t.Helper()
	var got []CollectorRecord
	testenv.Eventually(t, fmt.Sprintf("%d records at the collector", n), func() error {
		if got = c.Records(t); len(got) < n {
			return fmt.Errorf("got %d", len(got))
		}
		return nil
	})
	return got
}
