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

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
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
// k8s.namespace.name, kubeplex.app), the pod and node that shipped it (k8s.pod.name,
// k8s.node.name) and the drain token, and whose attributes name
// the source and the process.
func (s *suite) otlpDrain(t *testing.T) {
	col := s.otel
	const app = "otel"
	logApp(t, shopNS, app, "")
	token := logDrain(t, "otel", app, "otlp+http://"+col.HTTPAddr, "")
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
		return checkSequence(msgs, "x1", lines)
	})
	var pod corev1.Pod
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: "otel-1"}, &pod); err != nil {
		t.Fatal(err)
	}
	for _, r := range col.records(t) {
		if !strings.HasPrefix(r.Body, "x1 ") {
			continue
		}
		// The pod and node come from the collector that shipped the line.
		want := map[string]string{"service.name": app, "k8s.namespace.name": shopNS, "kubeplex.app": shopNS + "/" + app, "kubeplex.drain.token": token,
			"k8s.pod.name": pod.Name, "k8s.node.name": pod.Spec.NodeName}
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

// otlpInput: an app that logs only through the OpenTelemetry Go SDK's OTLP/HTTP log
// exporter, created with no options (test/node/otelworker), needs nothing but the
// environment the webhook injects: its records reach the collector's loopback OTLP
// input and from there a syslog drain (the TLS receiver, whole frames: severity as
// PRI, attributes as STRUCTURED-DATA) and an OTLP drain into the OpenTelemetry
// Collector's receiver (severity, scope and attributes in their OTLP places; the
// resource names the pod and node the collector runs in). Each
// record arrives once, in the order exported, as source app and the process of the
// worker's own stdout lines, at both drains.
func (s *suite) otlpInput(t *testing.T) {
	const app, pod, records = "otelsdk", "otelsdk-1", 12
	logApp(t, shopNS, app, "")
	tlsRef := "  tls: {caSecretRef: {name: drain-ca, key: ca.crt}}\n" // case 2's Secret
	sysToken := logDrain(t, "otelsdk-tls", app, "syslog+tls://"+s.tlsr.Addr, tlsRef)
	otlpToken := logDrain(t, "otelsdk-otlp", app, "otlp+http://"+s.otel.HTTPAddr, "")
	t.Cleanup(func() {
		_, _ = runErr(kubectlB, "delete", "-n", shopNS, "logdrain/otelsdk-tls", "logdrain/otelsdk-otlp", "pod/"+pod, "--wait=false")
	})
	// Both drains run once their "Drain … added" lines reached them (case 12).
	eventually(t, 2*time.Minute, "the drains' added lines", func() error {
		ok := false
		for _, r := range s.otel.records(t) {
			ok = ok || r.Attributes["kubeplex.source"] == "kubeplex" && strings.HasPrefix(r.Body, "Drain "+otlpToken+" added")
		}
		if !ok {
			return fmt.Errorf("no 'Drain %s added' record at the collector", otlpToken)
		}
		msgs, _ := s.tlsr.snapshot()
		for _, m := range msgs {
			if m.Token == sysToken && m.Source == "kubeplex" && strings.HasPrefix(m.Text, "Drain "+sysToken+" added") {
				return nil
			}
		}
		return fmt.Errorf("no 'Drain %s added' line at the TLS receiver", sysToken)
	})

	kubectlIn(t, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {kubeplex.io/app: %[3]s, kubeplex.io/process-type: %[1]s}
spec:
  restartPolicy: Never
  containers:
    - name: %[1]s
      image: %[4]s
      imagePullPolicy: Never
      command: ["/otelworker", "-prefix", "o1", "-records", "%[5]d"]
`, pod, shopNS, app, otelWorkerImage, records), "apply", "-f", "-")
	// What the worker relies on: the webhook's OTLP environment, nothing of its own.
	var p corev1.Pod
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: pod}, &p); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	if env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] != "http://127.0.0.1:4318/v1/logs" || env["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"] != "http/protobuf" {
		t.Fatalf("worker env lacks the webhook's OTLP settings: %v", env)
	}

	severity := func(i int) (sev int32, text string, pri uint8) {
		switch i % 3 {
		case 1:
			return 9, "INFO", wire.PriorityInfo
		case 2:
			return 13, "WARN", wire.PriorityWarning
		}
		return 17, "ERROR", wire.PriorityError
	}
	// The process every line of the worker carries: the one of its stdout line.
	procOf := func(msgs []msg) string {
		for _, m := range msgs {
			if m.Source == "app" && m.Text == fmt.Sprintf("o1 exported %d", records) {
				return m.Proc
			}
		}
		return ""
	}

	var sys []msg
	eventually(t, 2*time.Minute, "every record at the syslog drain in order", func() error {
		all, errs := s.tlsr.snapshot()
		if len(errs) > 0 {
			return fmt.Errorf("receiver errors: %v", errs)
		}
		sys = sys[:0]
		for _, m := range all {
			if m.Token == sysToken && m.Source == "app" {
				sys = append(sys, m)
			}
		}
		return otlpSequence(sys, records, func(m msg) string { return m.Text })
	})
	workerProc := procOf(sys)
	if workerProc == "" {
		t.Fatalf("no 'o1 exported %d' line from the worker at the syslog drain: %v", records, sys)
	}
	// The sidecar serves the OTLP input for every container of the pod (one network
	// namespace); with the pod's process type it names the records as the worker's
	// own lines.
	var proc string
	for _, m := range sys {
		if strings.HasPrefix(m.Text, "o1 record ") {
			proc = m.Proc
			break
		}
	}
	if proc != workerProc {
		t.Fatalf("OTLP records carry process %q, the worker's stdout lines %q", proc, workerProc)
	}
	for _, m := range sys {
		if !strings.HasPrefix(m.Text, "o1 record ") {
			continue
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(m.Text, "o1 record "))
		_, text, pri := severity(i)
		if m.Proc != proc || m.Pri != pri {
			t.Errorf("syslog %q: process %q, PRI %d; want %q, %d", m.Text, m.Proc, m.Pri, proc, pri)
		}
		sd := sdMap(t, m.SD)
		for k, v := range map[string]string{"otel@32473/severity_text": text, "otel@32473/scope.name": "shop/checkout",
			"log@32473/record.index": strconv.Itoa(i), "log@32473/order.id": fmt.Sprintf("A-%d", i),
			"res@32473/telemetry.sdk.language": "go"} {
			if sd[k] != v {
				t.Errorf("syslog %q: SD %s = %q, want %q (SD %s)", m.Text, k, sd[k], v, m.SD)
			}
		}
	}

	// Scheduled by now (its records arrived): the node it runs on.
	if err := cl.Get(ctxFor(t, 30*time.Second), client.ObjectKey{Namespace: shopNS, Name: pod}, &p); err != nil || p.Spec.NodeName == "" {
		t.Fatalf("pod %s: node %q, %v", pod, p.Spec.NodeName, err)
	}
	var recs []drainpeer.CollectorRecord
	eventually(t, 2*time.Minute, "every record at the OTLP drain in order", func() error {
		recs = recs[:0]
		for _, r := range s.otel.records(t) {
			if r.Resource["kubeplex.drain.token"] == otlpToken && r.Attributes["kubeplex.source"] == "app" {
				recs = append(recs, r)
			}
		}
		return otlpSequence(recs, records, func(r drainpeer.CollectorRecord) string { return r.Body })
	})
	for _, r := range recs {
		if !strings.HasPrefix(r.Body, "o1 record ") {
			continue
		}
		i, _ := strconv.Atoi(strings.TrimPrefix(r.Body, "o1 record "))
		sev, text, _ := severity(i)
		if r.SeverityNumber != sev || r.SeverityText != text || r.Scope != "shop/checkout" || r.TimeUnixNano == 0 {
			t.Errorf("OTLP %q: severity %d %q, scope %q, time %d; want %d %q, shop/checkout", r.Body, r.SeverityNumber, r.SeverityText, r.Scope, r.TimeUnixNano, sev, text)
		}
		for k, v := range map[string]string{"record.index": strconv.Itoa(i), "order.id": fmt.Sprintf("A-%d", i), "kubeplex.process": proc} {
			if r.Attributes[k] != v {
				t.Errorf("OTLP %q: attribute %s = %q, want %q (%v)", r.Body, k, r.Attributes[k], v, r.Attributes)
			}
		}
		for k, v := range map[string]string{"service.name": app, "k8s.namespace.name": shopNS, "kubeplex.app": shopNS + "/" + app,
			"k8s.pod.name": pod, "k8s.node.name": p.Spec.NodeName} {
			if r.Resource[k] != v {
				t.Errorf("OTLP %q: resource %s = %q, want %q (%v)", r.Body, k, r.Resource[k], v, r.Resource)
			}
		}
	}
}

// otlpSequence checks that items hold the bodies "o1 record 1".."o1 record n" each
// once and in order (other lines of the app are skipped).
func otlpSequence[T any](items []T, n int, text func(T) string) error {
	next := 1
	for _, it := range items {
		b := text(it)
		if !strings.HasPrefix(b, "o1 record ") {
			continue
		}
		if b != fmt.Sprintf("o1 record %d", next) {
			return fmt.Errorf("%q arrived where record %d was due", b, next)
		}
		next++
	}
	if next != n+1 {
		return fmt.Errorf("%d of %d records arrived", next-1, n)
	}
	return nil
}

// sdMap is a STRUCTURED-DATA list as "SD-ID/PARAM-NAME" → unescaped value.
func sdMap(t *testing.T, sd string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p := range wire.SDParams([]byte(sd)) {
		out[string(p.ID)+"/"+string(p.Name)] = string(wire.UnescapeSDValue(nil, p.Value))
	}
	return out
}
