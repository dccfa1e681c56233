//go:build node

package node

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// otelCollector is the OpenTelemetry Collector's OTLP receiver (test/otelcol, the
// sink the OTLP tests use) as a host process on the node's address, so that the
// router pods reach it through their gateway as they reach rsyslog.
type otelCollector struct {
	HTTPAddr string
	out      string
}

func startOtelCollector(t *testing.T) *otelCollector {
	t.Helper()
	bin, err := testenv.BuildModule("test/otelcol", "otelcol-sink")
	if err != nil {
		t.Fatal(err)
	}
	ln := listenNode(t)
	addr := ln.Addr().String()
	_ = ln.Close() // only to pick a free port on the node's address
	c := &otelCollector{HTTPAddr: addr, out: filepath.Join(t.TempDir(), "records.jsonl")}
	p := testenv.Start(t, bin, nil, "-http", addr, "-out", c.out)
	recordPid(t, "otelcol", p.Cmd.Process.Pid)
	eventually(t, time.Minute, "collector ready", func() error {
		select {
		case <-p.Exited():
			t.Fatalf("collector exited:\n%s", p.Out.String())
		default:
		}
		if !strings.Contains(p.Out.String(), "otelcol-sink ready") {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	return c
}

// records returns what the collector accepted so far, in order.
func (c *otelCollector) records(t *testing.T) []drainpeer.CollectorRecord {
	t.Helper()
	b, err := os.ReadFile(c.out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []drainpeer.CollectorRecord
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r drainpeer.CollectorRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			break // a line being written
		}
		out = append(out, r)
	}
	return out
}

// otlpDrain: an `otlp+http://` drain delivers an app's worker lines from the router
// pods to the OpenTelemetry Collector's OTLP receiver on the node: every line once,
// in order per stream, each a LogRecord whose resource names the app (service.name,
// k8s.namespace.name, kubeplex.app) and the drain token, and whose attributes name
// the source and the process.
func (s *suite) otlpDrain(t *testing.T) {
	col := startOtelCollector(t)
	const app = "otel"
	logApp(t, shopNS, app, "")
	token := logDrain(t, shopNS, "otel", app, "otlp+http://"+col.HTTPAddr, "")
	t.Cleanup(func() {
		_, _ = runErr(kubectlB, "delete", "-n", shopNS, "logdrain/otel", "pod/otel-1", "--wait=false") // the namespace goes in case 9 anyway
	})
	// The router runs the drain once the manager's "Drain … added" line reached it
	// through the drain (the manager posts it after the routers report the drain);
	// lines sent before could go to history only.
	eventually(t, 2*time.Minute, "the drain's added line at the collector", func() error {
		for _, r := range col.records(t) {
			if r.Attributes["kubeplex.source"] == "kubeplex" && strings.HasPrefix(r.Body, "Drain "+token+" added") {
				return nil
			}
		}
		return fmt.Errorf("no 'Drain %s added' record", token)
	})

	const lines = 200
	kubectlIn(t, workerPod(shopNS, "otel-1", app, "-prefix", "x1", "-lines", strconv.Itoa(lines), "-every", "5ms"), "apply", "-f", "-")
	eventually(t, 2*time.Minute, "every line of x1 at the collector in order", func() error {
		recs := col.records(t)
		msgs := make([]msg, 0, len(recs))
		for _, r := range recs {
			msgs = append(msgs, msg{Token: r.Resource["kubeplex.drain.token"], Source: r.Attributes["kubeplex.source"],
				Proc: r.Attributes["kubeplex.process"], Text: r.Body})
		}
		return checkSequence(msgs, "x1", lines, 3)
	})
	for _, r := range col.records(t) {
		if !strings.HasPrefix(r.Body, "x1 ") {
			continue
		}
		want := map[string]string{"service.name": app, "k8s.namespace.name": shopNS, "kubeplex.app": shopNS + "/" + app, "kubeplex.drain.token": token}
		for k, v := range want {
			if r.Resource[k] != v {
				t.Fatalf("record %q: resource %s = %q, want %q (resource %v)", r.Body, k, r.Resource[k], v, r.Resource)
			}
		}
		if p := r.Attributes["kubeplex.process"]; !strings.HasPrefix(p, "otel-1.") && p != "otel-1" {
			t.Fatalf("record %q: kubeplex.process %q, want the worker's process", r.Body, p)
		}
		if r.TimeUnixNano == 0 || r.SeverityText == "" {
			t.Fatalf("record %q: time %d, severity %q", r.Body, r.TimeUnixNano, r.SeverityText)
		}
	}
}
