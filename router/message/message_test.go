package message

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kubeplex/kubeplex/internal/wire"
)

func TestAppendDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    Msg
		want Msg // after clipping
	}{
		{name: "plain", m: Msg{Priority: 190, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("hello")},
			want: Msg{Priority: 190, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("hello")}},
		{name: "empty fields", m: Msg{Priority: 0, Time: 0}, want: Msg{}},
		{name: "clipped source and proc", m: Msg{Source: bytes.Repeat([]byte("s"), 60), ProcID: bytes.Repeat([]byte("p"), 200), Text: []byte("x")},
			want: Msg{Source: bytes.Repeat([]byte("s"), 48), ProcID: bytes.Repeat([]byte("p"), 128), Text: []byte("x")}},
		{name: "negative time", m: Msg{Time: -1, Text: []byte("before 1970")}, want: Msg{Time: -1, Text: []byte("before 1970")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Append([]byte("prefix"), &tt.m)[len("prefix"):]
			got, err := Decode(rec)
			if err != nil {
				t.Fatal(err)
			}
			if got.Priority != tt.want.Priority || got.Time != tt.want.Time || !bytes.Equal(got.Source, tt.want.Source) ||
				!bytes.Equal(got.ProcID, tt.want.ProcID) || !bytes.Equal(got.Text, tt.want.Text) {
				t.Errorf("Decode(Append(m)) = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeCorrupt(t *testing.T) {
	for _, b := range [][]byte{nil, {1, 2, 3}, append(make([]byte, 9), 5, 'a'), append(make([]byte, 9), 0, 7, 'a')} {
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode(%v) succeeded", b)
		}
	}
}

func TestAppendRFC5424Parses(t *testing.T) {
	m := Msg{Priority: 187, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("worker.3"), Text: []byte("boom ü")}
	rec := AppendRFC5424(nil, &m, "d.token")
	want := "<187>1 2025-11-25T10:00:00.123456+00:00 d.token app worker.3 - - boom ü"
	if string(rec) != want {
		t.Fatalf("record = %q, want %q", rec, want)
	}
	p, err := wire.Parse(rec)
	if err != nil {
		t.Fatal(err)
	}
	if p.Time.UnixMicro() != m.Time || p.AppName != "app" || p.ProcID != "worker.3" || p.Hostname != "d.token" {
		t.Errorf("parsed = %+v", p)
	}
	frame, _ := AppendFrame(nil, nil, &m, "d.token")
	if string(frame) != strconv.Itoa(len(want))+" "+want {
		t.Errorf("frame = %q", frame)
	}
	if got := string(AppendText(nil, &m)); got != "2025-11-25T10:00:00.123456+00:00 app[worker.3]: boom ü" {
		t.Errorf("text = %q", got)
	}
}

func TestSplitText(t *testing.T) {
	tests := []struct {
		name string
		text string
		max  int
		want []string
	}{
		{name: "short", text: "abc", max: 10, want: []string{"abc"}},
		{name: "empty", text: "", max: 10, want: []string{""}},
		{name: "exact", text: "abcde", max: 5, want: []string{"abcde"}},
		{name: "split", text: "abcdefghijk", max: 5, want: []string{"abcde", "fghij", "k"}},
		{name: "no cut inside rune", text: "abcdü", max: 5, want: []string{"abcd", "ü"}},
		{name: "euro sign", text: "ab€€", max: 4, want: []string{"ab", "€", "€"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			SplitText([]byte(tt.text), tt.max, func(p []byte) { got = append(got, string(p)) })
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("pieces = %q, want %q", got, tt.want)
			}
		})
	}
	// Logplex's limit: a 25,000-byte line becomes 10,000 + 10,000 + 5,000.
	long := strings.Repeat("é", 12500)
	var sizes []int
	SplitText([]byte(long), MaxLine, func(p []byte) {
		if !utf8.Valid(p) {
			t.Error("piece is not valid UTF-8")
		}
		sizes = append(sizes, len(p))
	})
	if len(sizes) != 3 || sizes[0] != 10000 || sizes[1] != 10000 || sizes[2] != 5000 {
		t.Errorf("sizes = %v", sizes)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	m := Msg{Priority: 190, Time: time.Now().UnixMicro(), Source: []byte("app"), ProcID: []byte("web.1"),
		Text: bytes.Repeat([]byte("x"), 120)}
	var dst, scratch []byte
	b.ReportAllocs()
	for b.Loop() {
		dst, scratch = AppendFrame(dst[:0], scratch, &m, "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
	}
}

func TestWireRecordMatchesEncoder(t *testing.T) {
	tests := []Msg{
		{Priority: 190, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("hello")},
		{Priority: 0, Time: 0},
		{Priority: 187, Time: -5, Source: []byte("kubeplex"), ProcID: []byte("router"), Text: []byte("a b  c ")},
		{Priority: 13, Time: 1, Text: bytes.Repeat([]byte("ü"), 5000)},
		{Priority: 250, Time: 1764064800999999, Source: []byte("a b\x00"), ProcID: []byte(strings.Repeat("p", 200)), Text: []byte(" x")},
		{Priority: 191, Time: 1 << 62, Source: []byte("app"), Attrs: []byte(`[x@32473 k="v \"q\""]`), Text: []byte("with sd")},
		{Priority: 190, Time: -(1 << 62), Attrs: []byte(`[a@1][b@2 c="d"]`)},
	}
	for _, host := range []string{"d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "-", "h"} {
		for i, m := range tests {
			wrec := AppendWire([]byte("junk"), &m)[4:]
			got := AppendFrameHost([]byte("x"), wrec, host)[1:]
			want, _ := AppendFrame(nil, nil, &m, host)
			if !bytes.Equal(got, want) {
				t.Errorf("%d/%s: frame %q, want %q", i, host, got, want)
			}
			if WireHostSize(wrec, host) != len(AppendRFC5424(nil, &m, host)) {
				t.Errorf("%d: WireHostSize wrong", i)
			}
		}
	}
	if Host("") != "-" || Host("a b") != "a_b" || len(Host(strings.Repeat("h", 300))) != 255 {
		t.Error("Host does not sanitize")
	}
}

// TestWireEncoderBatch: one WireEncoder over messages whose times stay within a
// second, cross to the next and jump back writes what a fresh AppendWire writes.
func TestWireEncoderBatch(t *testing.T) {
	var e WireEncoder
	var w []byte
	base := int64(1764064800999990)
	for i, dt := range []int64{0, 5, 9, 10, 11, 2_000_000, -3_000_000, -base - 1, 0, 86_400_000_000} {
		m := Msg{Priority: 190, Time: base + dt, Source: []byte("app"), ProcID: []byte("web." + strconv.Itoa(i)), Text: []byte("t")}
		w = e.Append(w[:0], &m, nil)
		if want := AppendWire(nil, &m); !bytes.Equal(w, want) {
			t.Errorf("%d: %q, want %q", i, w, want)
		}
	}
}

func BenchmarkWireFanout10(b *testing.B) {
	m := Msg{Priority: 190, Time: time.Now().UnixMicro(), Source: []byte("app"), ProcID: []byte("web.1"),
		Text: bytes.Repeat([]byte("x"), 120)}
	var w, dst []byte
	b.ReportAllocs()
	for b.Loop() {
		w = AppendWire(w[:0], &m)
		dst = dst[:0]
		for range 10 {
			dst = AppendFrameHost(dst, w, "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
		}
	}
}

// FuzzDecode: any bytes decode without panicking, and whatever Append wrote decodes
// back to what it was given (after clipping).
func FuzzDecode(f *testing.F) {
	f.Add([]byte("junk"), uint8(190), int64(1764064800123456), "app", "web.1", "", "", "text")
	f.Add([]byte("junk"), uint8(190), int64(1764064800123456), "app", "web.1", "k", `v"]\`, "text")
	// A pod name one byte past what leaves room for the node's (the origin was 256 bytes).
	f.Add([]byte("junk"), uint8(190), int64(1764064800123456), "app", "web.1", strings.Repeat("p", 254), "", "text")
	f.Fuzz(func(t *testing.T, junk []byte, pri uint8, ts int64, src, proc, name, value, text string) {
		_, _ = Decode(junk)
		m := Msg{Priority: pri, Time: ts, Source: []byte(src), ProcID: []byte(proc), Text: []byte(text)}
		if wire.SDName(name) {
			m.Attrs = append(wire.AppendSDParam([]byte("[x@32473"), name, value), ']')
		}
		got, err := Decode(Append(nil, &m))
		if err != nil {
			t.Fatal(err)
		}
		if got.Priority != pri || got.Time != ts || !bytes.Equal(got.Text, m.Text) ||
			!bytes.Equal(got.Source, clip(m.Source, maxSource)) || !bytes.Equal(got.ProcID, clip(m.ProcID, maxProc)) ||
			!bytes.Equal(got.Attrs, wire.ClipSD(m.Attrs, MaxAttrs)) {
			t.Fatalf("round trip %+v -> %+v", m, got)
		}
		// The drain path writes the same frame as the reference encoder.
		want, _ := AppendFrame(nil, nil, &m, "d.host")
		if w := AppendFrameHost(nil, AppendWire(nil, &m), "d.host"); !bytes.Equal(w, want) {
			t.Fatalf("wire frame %q, want %q", w, want)
		}
		// An origin (here made of the name and value) rides beside the record: the
		// frame is the same bytes, and the origin reads back as it was written.
		origin := AppendOrigin(nil, name, value)
		wrec := AppendWireOrigin(nil, &m, origin)
		if w := AppendFrameHost(nil, wrec, "d.host"); !bytes.Equal(w, want) {
			t.Fatalf("wire frame with origin %q, want %q", w, want)
		}
		if WireHostSize(wrec, "d.host") != WireHostSize(AppendWire(nil, &m), "d.host") {
			t.Fatal("the origin counts in the frame's size")
		}
		if got := WireOrigin(wrec); !bytes.Equal(got, origin) {
			t.Fatalf("origin %q, want %q", got, origin)
		}
		pod, node := OriginNames(origin)
		if len(origin) > 0 && (len(name)+len(value) < 250 && (string(pod) != name || string(node) != value)) {
			t.Fatalf("origin names %q %q, want %q %q", pod, node, name, value)
		}
		_, _ = OriginNames(junk)
		_ = AppendFrameHost(nil, junk, "h") // any bytes: no panic
	})
}

// TestWireOrigin: a drain record's origin is left out of the frame every drain writes
// and is read back by WireOrigin; names too long for MaxOrigin are left out.
func TestWireOrigin(t *testing.T) {
	m := Msg{Priority: 190, Time: 1764064800123456, Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("hi")}
	plain := AppendWire(nil, &m)
	origin := AppendOrigin(nil, "web-7d9f-x2", "node-a")
	with := AppendWireOrigin(nil, &m, origin)
	if f, g := AppendFrameHost(nil, plain, "d.t"), AppendFrameHost(nil, with, "d.t"); !bytes.Equal(f, g) {
		t.Fatalf("frame %q with an origin, %q without", g, f)
	}
	if WireHostSize(with, "d.t") != WireHostSize(plain, "d.t") {
		t.Errorf("host size %d with an origin, %d without", WireHostSize(with, "d.t"), WireHostSize(plain, "d.t"))
	}
	if WireOrigin(plain) != nil || !bytes.Equal(WireOrigin(with), origin) {
		t.Errorf("WireOrigin = %q, %q", WireOrigin(plain), WireOrigin(with))
	}
	if pod, node := OriginNames(origin); string(pod) != "web-7d9f-x2" || string(node) != "node-a" {
		t.Errorf("OriginNames = %q, %q", pod, node)
	}
	if len(with)-len(plain) != 1+len(origin) || len(origin) != 2+len("web-7d9f-x2")+len("node-a") {
		t.Errorf("an origin costs %d bytes", len(with)-len(plain))
	}
	if len(AppendOrigin(nil, "", "")) != 0 {
		t.Error("an origin of no names")
	}
	// Names at MaxOrigin's edge: what is kept reads back, and the origin is never
	// longer than a drain record carries (it would be dropped whole).
	for _, c := range []struct {
		pod, node         int // lengths
		wantPod, wantNode int
	}{
		{253, 6, 253, 0}, {253, 0, 253, 0}, {252, 1, 252, 1}, {254, 1, 0, 1}, {254, 0, 0, 0},
		{255, 253, 0, 253}, {0, 253, 0, 253}, {100, 153, 100, 153}, {100, 154, 100, 0},
	} {
		pod, node := strings.Repeat("p", c.pod), strings.Repeat("n", c.node)
		o := AppendOrigin(nil, pod, node)
		if len(o) > MaxOrigin {
			t.Errorf("origin of %d-byte and %d-byte names is %d bytes", c.pod, c.node, len(o))
		}
		gotPod, gotNode := OriginNames(o)
		if len(gotPod) != c.wantPod || len(gotNode) != c.wantNode {
			t.Errorf("names of %d and %d bytes read back as %d and %d, want %d and %d",
				c.pod, c.node, len(gotPod), len(gotNode), c.wantPod, c.wantNode)
		}
		if !bytes.Equal(WireOrigin(AppendWireOrigin(nil, &m, o)), o) {
			t.Errorf("names of %d and %d bytes: the drain record lost the origin", c.pod, c.node)
		}
	}
}

// BenchmarkAppendWire: the per-message cost of encoding a drain record at publish,
// without and with an origin (a collector's pod and node).
func BenchmarkAppendWire(b *testing.B) {
	m := Msg{Priority: 190, Time: time.Now().UnixMicro(), Source: []byte("app"), ProcID: []byte("web.1"),
		Text: bytes.Repeat([]byte("x"), 120)}
	for _, c := range []struct {
		name   string
		origin []byte
	}{{"none", nil}, {"origin", AppendOrigin(nil, "web-7d9f8b6c5d-x2kq4", "ip-10-0-12-34.eu-west-1.compute.internal")}} {
		b.Run(c.name, func(b *testing.B) {
			var dst []byte
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendWireOrigin(dst[:0], &m, c.origin)
			}
		})
	}
}
