package session

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

// TestJSONAttributes: a line's attributes (its structured data) come in JSON lines
// and SSE as one flat "attrs" object in their order: OpenTelemetry fields and record
// attributes by name, resource attributes as resource.<name>, other elements'
// parameters as <SD-ID>.<name>; escapes undone, the first of two equal names kept.
// A line without attributes has no "attrs".
func TestJSONAttributes(t *testing.T) {
	sd := "[" + wire.SDIDOtel + ` trace_id="4bf92f3577b34da6a3ce929d0e0e4736" span_id="00f067aa0ba902b7" severity_text="WARN"]` +
		"[" + wire.SDIDLog + ` user.id="42" quote="say \"hi\" \\ \]" trace_id="not the trace"]` +
		"[" + wire.SDIDResource + ` service.name="checkout"]` +
		`[exampleSDID@32473 iut="3" ctl="a` + "\x01\xff" + `b"]`
	m := message.Msg{Priority: 190, Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixMicro(),
		Source: []byte("app"), ProcID: []byte("web.1"), Attrs: []byte(sd), Text: []byte("payment declined")}
	rec := message.Append(nil, &m)
	plain := message.AppendStrings(nil, 190, time.Unix(1, 0), "app", "web.1", "no attributes")

	e := &encoder{f: formatJSON}
	e.record(rec, 0, 0)
	e.record(plain, 0, 0)
	lines := bytes.Split(bytes.TrimSuffix(e.buf, []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%q", e.buf)
	}
	var got struct {
		jsonLine
		Attrs map[string]string `json:"attrs"`
	}
	if err := json.Unmarshal(lines[0], &got); err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	want := map[string]string{
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "severity_text": "WARN",
		"user.id": "42", "quote": `say "hi" \ ]`, "resource.service.name": "checkout",
		"exampleSDID@32473.iut": "3", "exampleSDID@32473.ctl": "a\x01\ufffdb",
	}
	if got.Message != "payment declined" || len(got.Attrs) != len(want) {
		t.Fatalf("line %s: %+v", lines[0], got)
	}
	for k, v := range want {
		if got.Attrs[k] != v {
			t.Errorf("attrs[%q] = %q, want %q (line %s)", k, got.Attrs[k], v, lines[0])
		}
	}
	if i, j := bytes.Index(lines[0], []byte(`"trace_id"`)), bytes.Index(lines[0], []byte(`"resource.service.name"`)); i < 0 || j < i {
		t.Errorf("attributes out of order: %s", lines[0])
	}
	if bytes.Contains(lines[1], []byte("attrs")) {
		t.Errorf("a line without attributes: %s", lines[1])
	}

	e = &encoder{f: formatSSE}
	e.record(rec, 0, 0)
	data := strings.SplitN(string(e.buf), "\ndata: ", 2)
	if len(data) != 2 || !strings.Contains(data[1], `,"attrs":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",`) {
		t.Fatalf("SSE event %q", e.buf)
	}
	// The text form stays Heroku's, attributes or not.
	e = &encoder{f: formatText}
	e.record(rec, 0, 0)
	if got := string(e.buf); got != "2026-11-25T10:00:00.000000+00:00 app[web.1]: payment declined\n" {
		t.Fatalf("text %q", got)
	}
}

// TestEncoderTimes: the encoder's own timestamp formatting (the second kept from the
// line before) writes what wire.AppendTimestampMicro writes, whatever the order of
// the times, and the text form is message.AppendText's.
func TestEncoderTimes(t *testing.T) {
	e := &encoder{f: formatText}
	base := time.Date(2026, 11, 25, 23, 59, 59, 999999000, time.UTC).UnixMicro()
	times := make([]int64, 0, 1100)
	times = append(times, base, base, base+1, base-1, base+1e6, 0, 1, -1, 951782400e6-1, 951782400e6, // 2000-02-29
		maxCachedMicros-1, maxCachedMicros, 1<<62, -(1 << 62))
	for i := range 500 {
		times = append(times, base+int64(i)*7777777, base-int64(i)*86400e6-int64(i))
	}
	for _, us := range times {
		m := message.Msg{Time: us, Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("x")}
		if got, want := string(e.appendText(nil, &m)), string(message.AppendText(nil, &m)); got != want {
			t.Fatalf("time %d: %q, want %q", us, got, want)
		}
	}
}
