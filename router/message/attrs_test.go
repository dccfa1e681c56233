package message

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/go-syslog/v3/rfc5424"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// sdOf builds a valid STRUCTURED-DATA list: one element per id, params as name, value pairs.
func sdOf(elems ...[]string) []byte {
	var b []byte
	for _, e := range elems {
		b = append(b, '[')
		b = append(b, e[0]...)
		for i := 1; i+1 < len(e); i += 2 {
			b = wire.AppendSDParam(b, e[i], e[i+1])
		}
		b = append(b, ']')
	}
	return b
}

func TestAttrsRoundTrip(t *testing.T) {
	sd := sdOf([]string{wire.SDIDOtel, "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", "severity_text", "WARN"},
		[]string{wire.SDIDLog, "user.id", `a "quoted" \ val]ue`, "n", "42"},
		[]string{wire.SDIDResource, "service.name", "checkout"})
	m := Msg{Priority: 188, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("web.1"), Attrs: sd, Text: []byte("hello")}
	rec := Append([]byte("prefix"), &m)[len("prefix"):]
	got, err := Decode(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Attrs, sd) || string(got.Source) != "app" || string(got.ProcID) != "web.1" || string(got.Text) != "hello" {
		t.Fatalf("Decode = %+v", got)
	}
	var seen []string
	for a := range got.Attributes() {
		seen = append(seen, fmt.Sprintf("%s/%s=%s", a.ID, a.Name, a.Value))
	}
	want := []string{
		wire.SDIDOtel + "/trace_id=4bf92f3577b34da6a3ce929d0e0e4736", wire.SDIDOtel + "/severity_text=WARN",
		wire.SDIDLog + `/user.id=a "quoted" \ val]ue`, wire.SDIDLog + "/n=42",
		wire.SDIDResource + "/service.name=checkout",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("Attributes =\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	// Without attributes the record is the same bytes as before attributes existed.
	plain := m
	plain.Attrs = nil
	if a, b := Append(nil, &plain), Append(nil, &m); len(b)-len(a) != 2+len(sd) {
		t.Errorf("attributes cost %d bytes, want %d", len(b)-len(a), 2+len(sd))
	}
	if got, _ := Decode(Append(nil, &plain)); got.Attrs != nil {
		t.Errorf("plain record decodes with attrs %q", got.Attrs)
	}
}

// The SD a drain writes is what a strict receiver (go-syslog) reads back, param for param.
func TestAttrsOnTheWire(t *testing.T) {
	sd := sdOf([]string{wire.SDIDOtel, "span_id", "00f067aa0ba902b7"},
		[]string{wire.SDIDLog, "k", `x"]\y`, "u", "ünïcode"})
	if wire.SDName("ü") || wire.SDName("a=b") || wire.SDName(strings.Repeat("n", 33)) || !wire.SDName("http.response.status_code") {
		t.Error("SDName lets a bad name through or refuses a good one")
	}
	m := Msg{Priority: 190, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("web.1"), Attrs: sd, Text: []byte("hi there")}
	frame := AppendFrameHost(nil, AppendWire(nil, &m), "d.tok")
	want, _ := AppendFrame(nil, nil, &m, "d.tok")
	if !bytes.Equal(frame, want) {
		t.Fatalf("wire frame %q, want %q", frame, want)
	}
	rec := AppendRFC5424(nil, &m, "d.tok")
	if !bytes.Contains(rec, []byte(" - "+string(sd)+" hi there")) {
		t.Fatalf("record %q lacks its SD", rec)
	}
	sm, err := rfc5424.NewParser().Parse(rec)
	if err != nil {
		t.Fatalf("go-syslog refuses %q: %v", rec, err)
	}
	got := *sm.(*rfc5424.SyslogMessage).StructuredData
	if got[wire.SDIDOtel]["span_id"] != "00f067aa0ba902b7" || got[wire.SDIDLog]["k"] != `x"]\y` || got[wire.SDIDLog]["u"] != "ünïcode" {
		t.Errorf("go-syslog read SD %v", got)
	}
	f, err := wire.Scan(rec)
	if err != nil || !bytes.Equal(f.StructuredData, sd) || string(f.Text) != "hi there" {
		t.Errorf("Scan = %q, %v", f.StructuredData, err)
	}
}

func TestAttrsClipped(t *testing.T) {
	elems := make([][]string, 0, 100)
	for i := range 100 {
		elems = append(elems, []string{fmt.Sprintf("e%d@32473", i), "v", strings.Repeat("x]", 30)})
	}
	sd := sdOf(elems...)
	m := Msg{Source: []byte("app"), Attrs: sd, Text: []byte("t")}
	got, err := Decode(Append(nil, &m))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Attrs) > MaxAttrs || len(got.Attrs) < MaxAttrs-200 || !bytes.HasPrefix(sd, got.Attrs) {
		t.Fatalf("clipped to %d bytes", len(got.Attrs))
	}
	if _, err := wire.Scan(append([]byte("<1>1 - - - - - "), got.Attrs...)); err != nil {
		t.Errorf("clipped SD is not valid: %v", err)
	}
	if string(got.Text) != "t" {
		t.Errorf("text %q", got.Text)
	}
}

func TestDecodeCorruptAttrs(t *testing.T) {
	ok := Append(nil, &Msg{Source: []byte("a"), ProcID: []byte("p"), Attrs: sdOf([]string{"x@1", "k", "v"}), Text: []byte("t")})
	for _, n := range []int{headerLen + 2, headerLen + 3, headerLen + 4} { // cut inside the length or the attributes
		if _, err := Decode(ok[:n]); err == nil {
			t.Errorf("Decode of %d of %d bytes succeeded", n, len(ok))
		}
	}
}

func BenchmarkAppendDecode(b *testing.B) {
	m := Msg{Priority: 190, Time: time.Now().UnixMicro(), Source: []byte("app"), ProcID: []byte("web.1"),
		Text: bytes.Repeat([]byte("x"), 120)}
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst = Append(dst[:0], &m)
		if _, err := Decode(dst); err != nil {
			b.Fatal(err)
		}
	}
}
