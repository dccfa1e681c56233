package otlp

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/message"
)

var encodeCfg = &drain.Config{Drain: routing.Drain{ID: "shop/d", Token: "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}, App: "shop/web"}

// checkEncoding encodes b with the hand-written encoder and with the reference (the
// generated message tree), and fails unless the first parses as protobuf into the
// same request.
func checkEncoding(t testing.TB, b *drain.Batch) *collogs.ExportLogsServiceRequest {
	t.Helper()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	want := newRefEncoder(encodeCfg).encode(b, now)
	pb, _ := newEncoder(encodeCfg).encode(nil, nil, b, now)
	var got collogs.ExportLogsServiceRequest
	if err := proto.Unmarshal(pb, &got); err != nil {
		t.Fatalf("encoding does not parse: %v", err)
	}
	if !proto.Equal(want, &got) {
		t.Fatalf("encoding differs from the message tree:\nwant %s\ngot  %s", prototext.Format(want), prototext.Format(&got))
	}
	return &got
}

func batchOf(msgs ...message.Msg) *drain.Batch {
	b := &drain.Batch{}
	for i := range msgs {
		b.AddRecord(message.AppendWire(nil, &msgs[i]), message.Host(encodeCfg.Token))
	}
	return b
}

// batchWithOrigins is batchOf for a drain that keeps origins, origins[i] being msgs[i]'s.
func batchWithOrigins(msgs []message.Msg, origins [][]byte) *drain.Batch {
	b := &drain.Batch{}
	b.KeepOrigins()
	for i := range msgs {
		b.AddRecord(message.AppendWireOrigin(nil, &msgs[i], origins[i]), message.Host(encodeCfg.Token))
	}
	return b
}

// TestOrigins: the collector's pod and node become k8s.pod.name and k8s.node.name on
// the resource, replacing a producer's of the same name, and consecutive lines of one
// pod share one ResourceLogs.
func TestOrigins(t *testing.T) {
	o1, o2 := message.AppendOrigin(nil, "web-1", "node-a"), message.AppendOrigin(nil, "", "node-b")
	b := batchWithOrigins([]message.Msg{msg("a", ""), msg("b", `[res@32473 k8s.pod.name="forged" k8s.node.name="f"]`),
		msg("c", `[res@32473 k8s.pod.name="sdk-pod"]`), msg("d", "")}, [][]byte{o1, o1, o2, nil})
	got := checkEncoding(t, b)
	shape := make([]string, 0, len(got.ResourceLogs))
	for _, rl := range got.ResourceLogs {
		var attrs []string
		for _, kv := range rl.Resource.Attributes {
			if strings.HasPrefix(kv.Key, "k8s.pod") || strings.HasPrefix(kv.Key, "k8s.node") {
				attrs = append(attrs, kv.Key+"="+kv.Value.GetStringValue())
			}
		}
		shape = append(shape, fmt.Sprintf("%v:%d", attrs, len(rl.ScopeLogs[0].LogRecords)))
	}
	// a and b differ in their res@ element, so they are two resources with the same
	// pod; c keeps the SDK's pod name (the collector sent only its node).
	want := "[[k8s.pod.name=web-1 k8s.node.name=node-a]:1 [k8s.pod.name=web-1 k8s.node.name=node-a]:1 " +
		"[k8s.node.name=node-b k8s.pod.name=sdk-pod]:1 []:1]"
	if fmt.Sprint(shape) != want {
		t.Errorf("resources %v\nwant      %s", shape, want)
	}
	// A drain that does not keep origins sees the same frames and no origin.
	plain := &drain.Batch{}
	ma := msg("a", "")
	plain.AddRecord(message.AppendWireOrigin(nil, &ma, o1), "h")
	if plain.Origin(0) != nil {
		t.Errorf("origin %q in a batch that does not keep them", plain.Origin(0))
	}
}

// atTime is a message at 2026-12-01T12:00:00Z plus us microseconds.
func atTime(us int64) message.Msg {
	m := msg(fmt.Sprint("t", us), "")
	m.Time = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC).UnixMicro() + us
	return m
}

// TestTimestampCache: the cached parse agrees with wire.ParseTimestamp on every form,
// in any order (the cache holds the previous one's second).
func TestTimestampCache(t *testing.T) {
	forms := []string{"2026-12-01T12:00:00.5+00:00", "2026-12-01T12:00:00.123456+00:00", "2026-12-01T12:00:00.1+01:00",
		"2026-12-01T12:00:01.000001Z", "2026-12-01T12:00:01Z", "2026-12-01T12:00:01.9-05:30", "2026-12-01T12:00:01.1234567Z",
		"2026-12-01T12:00:01.12Z", "-", "", "2026-12-01T12:00:01.Z", "2026-12-01T12:00:01.12x", "2016-12-31T23:59:60.5Z",
		"2026-12-01T12:00:01.123456+00:00", "2026-12-01T12:00:01.654321+00:00"}
	var c tsCache
	for _, order := range [][]string{forms, slices.Concat(forms, forms), {forms[13], forms[14], forms[12], forms[14]}} {
		for _, f := range order {
			want, err := wire.ParseTimestamp([]byte(f))
			got, ok := c.parse([]byte(f))
			if ok != (err == nil) || ok && got != want {
				t.Errorf("parse(%q) = %d, %v; ParseTimestamp %d, %v", f, got, ok, want, err)
			}
		}
	}
}

func msg(text, sd string) message.Msg {
	return message.Msg{Priority: wire.PriorityInfo, Time: 1764590400123456, Source: []byte("app"), ProcID: []byte("web.1"),
		Text: []byte(text), Attrs: []byte(sd)}
}

// TestEncodingMatchesMessageTree: the protobuf written by hand is the request the
// generated OTLP types describe, for plain lines, every kind of structured data,
// escapes, invalid UTF-8, lengths that take 1, 2 and 3 bytes, and a frame that does
// not scan.
func TestEncodingMatchesMessageTree(t *testing.T) {
	sdk := `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" span_id="00f067aa0ba902b7" flags="1" severity_text="WARN" event_name="payment.declined" scope.name="checkout" scope.version="1.2" dropped_attributes_count="2"]` +
		`[log@32473 user.id="42" note="a \"quoted\\] value" kubeplex.source="forged" empty=""]` +
		`[res@32473 service.name="checkout-api" telemetry.sdk.language="go" kubeplex.drain.token="forged"]`
	cases := map[string]*drain.Batch{
		"plain":     batchOf(msg("hello", ""), msg("", ""), msg("world", "")),
		"sdk":       batchOf(msg("declined", sdk), msg("again", sdk), msg("plain", ""), msg("other", `[exampleSDID@32473 iut="3" eventSource="Application"]`)),
		"groups":    batchOf(msg("a", `[otel@32473 scope.name="a"][res@32473 service.name="x"]`), msg("b", `[otel@32473 scope.name="b"][res@32473 service.name="x"]`), msg("c", ""), msg("d", `[res@32473 host.name="y"]`)),
		"bad ids":   batchOf(msg("x", `[otel@32473 trace_id="zz" span_id="00f067aa0ba902b7ff" flags="-1" dropped_attributes_count="x"]`)),
		"times":     batchOf(atTime(0), atTime(1), atTime(999999), atTime(1000000), atTime(1500000), atTime(-1), atTime(86400e6)),
		"hex flags": batchOf(msg("x", `[otel@32473 flags="81"]`)),
		"utf8":      batchOf(msg("bad \xff\xfe utf-8", `[log@32473 k="v\xff"]`)),
		"long":      batchOf(msg(strings.Repeat("x", 20000), ""), msg(strings.Repeat("y", 100), ""), msg(strings.Repeat("z", 200), "")),
	}
	// A batch over 2 MiB: the group lengths take 4 bytes, one more than reserved.
	big := make([]message.Msg, 0, 200)
	for range 200 {
		big = append(big, msg(strings.Repeat("w", 12000), ""))
	}
	cases["big"] = batchOf(big...)
	// Lines from collectors: runs of one pod share a resource, the collector's pod and
	// node win over a producer's, and a line from elsewhere (no origin) has neither.
	o1, o2 := message.AppendOrigin(nil, "web-7d9f-x2", "node-a"), message.AppendOrigin(nil, "web-7d9f-y3", "")
	forged := `[res@32473 k8s.pod.name="forged" k8s.node.name="forged-node" host.name="h"]`
	cases["origins"] = batchWithOrigins([]message.Msg{msg("a", ""), msg("b", ""), msg("c", forged), msg("d", ""), msg("e", forged), msg("f", "")},
		[][]byte{o1, o1, o1, o2, o2, nil})
	// A frame that does not scan is sent whole as the body.
	odd := batchOf(msg("ok", ""))
	odd.AddRecord([]byte("not a syslog record"), "h")
	cases["unscannable"] = odd
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			got := checkEncoding(t, b)
			n := 0
			for _, rl := range got.ResourceLogs {
				for _, sl := range rl.ScopeLogs {
					n += len(sl.LogRecords)
				}
			}
			if n != b.Len() {
				t.Errorf("%d records, want %d", n, b.Len())
			}
		})
	}
}

// TestScopeAttributes: a scope@32473 element becomes the InstrumentationScope's
// attributes, and records with other scope attributes get a ScopeLogs of their own.
func TestScopeAttributes(t *testing.T) {
	a := `[otel@32473 scope.name="lib" scope.version="2"][scope@32473 lib.flavour="x" n="1"]`
	b := `[otel@32473 scope.name="lib" scope.version="2"][scope@32473 lib.flavour="y"]`
	pb, _ := newEncoder(encodeCfg).encode(nil, nil, batchOf(msg("1", a), msg("2", a), msg("3", b)), time.Now())
	var got collogs.ExportLogsServiceRequest
	if err := proto.Unmarshal(pb, &got); err != nil {
		t.Fatal(err)
	}
	shape := make([]string, 0, len(got.ResourceLogs[0].ScopeLogs))
	for _, sl := range got.ResourceLogs[0].ScopeLogs {
		s := sl.Scope
		attrs := []string{}
		for _, kv := range s.Attributes {
			attrs = append(attrs, kv.Key+"="+kv.Value.GetStringValue())
		}
		shape = append(shape, fmt.Sprintf("%s@%s%v:%d", s.Name, s.Version, attrs, len(sl.LogRecords)))
	}
	if fmt.Sprint(shape) != "[lib@2[lib.flavour=x n=1]:2 lib@2[lib.flavour=y]:1]" {
		t.Errorf("scopes %v", shape)
	}
}

// FuzzEncoding: any text and structured data encode to the request the message tree
// describes (scope@32473, which the reference does not know, aside).
func FuzzEncoding(f *testing.F) {
	f.Add("hello", `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" scope.name="a"][log@32473 k="v"][res@32473 service.name="x"]`, uint8(14))
	f.Add("x\xff", `[a@1 b="c\"d"]`, uint8(0))
	f.Add(strings.Repeat("long ", 4000), "", uint8(191))
	f.Fuzz(func(t *testing.T, text, sd string, pri uint8) {
		if strings.Contains(sd, "scope@") {
			return
		}
		m := message.Msg{Priority: pri % 192, Time: 1764590400123456, Source: []byte("app"), ProcID: []byte("web.1"),
			Text: []byte(text), Attrs: []byte(sd)}
		rec := message.AppendWire(nil, &m)
		b := &drain.Batch{}
		b.KeepOrigins()
		b.AddRecord(rec, "h")
		b.AddRecord(rec, "h")
		// The same line from a collector: a resource of its own with the pod and node.
		b.AddRecord(message.AppendWireOrigin(nil, &m, message.AppendOrigin(nil, "web-1", "node-a")), "h")
		checkEncoding(t, b)
	})
}
