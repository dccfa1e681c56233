package otlpin

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/kubeplex/kubeplex/internal/wire"
)

func str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

func kv(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

var (
	traceID = []byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	spanID  = []byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	t0      = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
)

func sample() *logspb.LogsData {
	return &logspb.LogsData{ResourceLogs: []*logspb.ResourceLogs{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", str("checkout"))}},
		ScopeLogs: []*logspb.ScopeLogs{{
			Scope: &commonpb.InstrumentationScope{Name: "shop/pay", Version: "1.2",
				Attributes: []*commonpb.KeyValue{kv("lib.flavour", str("plain"))}},
			LogRecords: []*logspb.LogRecord{
				{TimeUnixNano: uint64(t0.UnixNano()), SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_WARN, SeverityText: "WARN",
					Body: str("payment declined"), TraceId: traceID, SpanId: spanID, Flags: 1,
					Attributes: []*commonpb.KeyValue{
						kv("user.id", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 42}}),
						kv("bad name", str("x")),
						kv("note", str(`say "hi" ]`)),
					}},
				{ObservedTimeUnixNano: uint64(t0.Add(time.Second).UnixNano()), SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_ERROR2,
					Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{
						kv("a", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{
							{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}, {Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}, str("x\n\"y\"")}}}}),
						kv("b", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2, 3}}}),
					}}}}},
				{SeverityText: "debug"},
			},
		}},
	}}}
}

type got struct {
	pri  uint8
	t    time.Time
	sd   string
	text string
}

func collect(t *testing.T, body []byte, header http.Header, lim Limits) (*httptest.ResponseRecorder, []got) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header = header
	w := httptest.NewRecorder()
	var out []got
	now := t0.Add(time.Hour)
	_, _ = Handle(w, req, lim, now, func(r *Record) bool {
		out = append(out, got{r.Priority, r.Time, string(r.SD), string(r.Text)})
		return true
	})
	return w, out
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func wantSample(t *testing.T, out []got) {
	t.Helper()
	want := []got{
		{188, t0, `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" span_id="00f067aa0ba902b7" flags="01" severity_text="WARN" scope.name="shop/pay" scope.version="1.2" dropped_attributes_count="1"]` +
			`[log@32473 user.id="42" note="say \"hi\" \]"][res@32473 service.name="checkout"][scope@32473 lib.flavour="plain"]`, "payment declined"},
		{187, t0.Add(time.Second), `[otel@32473 scope.name="shop/pay" scope.version="1.2"][res@32473 service.name="checkout"][scope@32473 lib.flavour="plain"]`,
			`{"a":[true,1.5,"x\n\"y\""],"b":"AQID"}`},
		{191, t0.Add(time.Hour), `[otel@32473 severity_text="debug" scope.name="shop/pay" scope.version="1.2"][res@32473 service.name="checkout"][scope@32473 lib.flavour="plain"]`, ""},
	}
	if len(out) != len(want) {
		t.Fatalf("got %d records: %+v", len(out), out)
	}
	for i := range want {
		if out[i].pri != want[i].pri || !out[i].t.Equal(want[i].t) || out[i].sd != want[i].sd || out[i].text != want[i].text {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, out[i], want[i])
		}
		// Every SD written is one a strict receiver takes.
		if _, err := wire.Parse(wire.AppendRFC5424(nil, &wire.Message{Priority: out[i].pri, Time: out[i].t,
			StructuredData: []byte(out[i].sd), Text: []byte(out[i].text)})); err != nil {
			t.Errorf("record %d does not parse: %v", i, err)
		}
	}
}

func TestProtobufAndGzip(t *testing.T) {
	body, err := proto.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]struct {
		body   []byte
		header http.Header
	}{
		"plain": {body, hdr("Content-Type", ContentProtobuf)},
		"gzip":  {gz(body), hdr("Content-Type", ContentProtobuf, "Content-Encoding", "gzip")},
	} {
		t.Run(name, func(t *testing.T) {
			w, out := collect(t, h.body, h.header, Limits{})
			if w.Code != 200 || w.Header().Get("Content-Type") != ContentProtobuf {
				t.Fatalf("answer %d %q", w.Code, w.Body)
			}
			var resp collogspb.ExportLogsServiceResponse
			if err := proto.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.PartialSuccess != nil {
				t.Errorf("response %v, %v", &resp, err)
			}
			wantSample(t, out)
		})
	}
}

// OTLP JSON as the specification writes it: hex ids, lowerCamelCase, int64 as strings,
// enums as numbers.
func TestJSON(t *testing.T) {
	body := fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
 "scopeLogs":[{"scope":{"name":"shop/pay","version":"1.2","attributes":[{"key":"lib.flavour","value":{"stringValue":"plain"}}]},"logRecords":[
  {"timeUnixNano":"%d","severityNumber":13,"severityText":"WARN","body":{"stringValue":"payment declined"},
   "traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","flags":1,"unknownField":true,
   "attributes":[{"key":"user.id","value":{"intValue":"42"}},{"key":"bad name","value":{"stringValue":"x"}},{"key":"note","value":{"stringValue":"say \"hi\" ]"}}]},
  {"observedTimeUnixNano":%d,"severityNumber":"SEVERITY_NUMBER_ERROR2","body":{"kvlistValue":{"values":[
    {"key":"a","value":{"arrayValue":{"values":[{"boolValue":true},{"doubleValue":1.5},{"stringValue":"x\n\"y\""}]}}},
    {"key":"b","value":{"bytesValue":"AQID"}}]}}},
  {"severityText":"debug"}]}]}]}`, t0.UnixNano(), t0.Add(time.Second).UnixNano())
	w, out := collect(t, []byte(body), hdr("Content-Type", "application/json; charset=utf-8"), Limits{})
	if w.Code != 200 || w.Header().Get("Content-Type") != ContentJSON || strings.TrimSpace(w.Body.String()) != "{}" {
		t.Fatalf("answer %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	wantSample(t, out)
}

func TestRefusals(t *testing.T) {
	body, _ := proto.Marshal(sample())
	bomb := gz(bytes.Repeat([]byte{0}, 1<<20))
	tests := []struct {
		name   string
		body   []byte
		header http.Header
		lim    Limits
		status int
		json   bool
	}{
		{"malformed protobuf", []byte("\xff\xff\xff"), hdr("Content-Type", ContentProtobuf), Limits{}, 400, false},
		{"malformed json", []byte(`{"resourceLogs":[`), hdr("Content-Type", ContentJSON), Limits{}, 400, true},
		{"bad gzip", []byte("not gzip"), hdr("Content-Type", ContentProtobuf, "Content-Encoding", "gzip"), Limits{}, 400, false},
		{"over the body limit", body, hdr("Content-Type", ContentProtobuf), Limits{MaxBody: len(body) - 1}, 413, false},
		{"gzip bomb", bomb, hdr("Content-Type", ContentProtobuf, "Content-Encoding", "gzip"), Limits{MaxBody: 64 << 10}, 413, false},
		{"other content type", body, hdr("Content-Type", "text/plain"), Limits{}, 415, false},
		{"other encoding", body, hdr("Content-Type", ContentProtobuf, "Content-Encoding", "br"), Limits{}, 415, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, out := collect(t, tt.body, tt.header, tt.lim)
			if w.Code != tt.status || len(out) != 0 {
				t.Fatalf("answer %d with %d records, want %d and none", w.Code, len(out), tt.status)
			}
			var st status.Status
			if tt.json {
				err := protojson.Unmarshal(w.Body.Bytes(), &st)
				if err != nil || st.Code != 3 || st.Message == "" {
					t.Errorf("status body %q: %v", w.Body, err)
				}
			} else if err := proto.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Code == 0 || st.Message == "" {
				t.Errorf("status body %q: %v", w.Body, err)
			}
		})
	}
}

func TestPartialSuccess(t *testing.T) {
	data := sample()
	// A record whose body is over MaxText is refused; the others are kept.
	data.ResourceLogs[0].ScopeLogs[0].LogRecords[2].Body = str(strings.Repeat("x", 200))
	for _, enc := range []string{ContentProtobuf, ContentJSON} {
		t.Run(enc, func(t *testing.T) {
			var body []byte
			if enc == ContentJSON {
				body, _ = protojson.Marshal(data) // base64 ids: protojson's own form is taken too
			} else {
				body, _ = proto.Marshal(data)
			}
			w, out := collect(t, body, hdr("Content-Type", enc), Limits{MaxText: 100})
			if w.Code != 200 || len(out) != 2 {
				t.Fatalf("answer %d %q, %d records", w.Code, w.Body, len(out))
			}
			var resp collogspb.ExportLogsServiceResponse
			var err error
			if enc == ContentJSON {
				err = protojson.Unmarshal(w.Body.Bytes(), &resp)
			} else {
				err = proto.Unmarshal(w.Body.Bytes(), &resp)
			}
			if err != nil || resp.GetPartialSuccess().GetRejectedLogRecords() != 1 ||
				!strings.Contains(resp.GetPartialSuccess().GetErrorMessage(), "over 100 bytes") {
				t.Errorf("response %q: %v", w.Body, err)
			}
			if !strings.Contains(out[0].sd, `trace_id="4bf92f3577b34da6a3ce929d0e0e4736"`) {
				t.Errorf("ids lost: %s", out[0].sd)
			}
		})
	}
}

// However many and however long the attributes, the SD stays within MaxAttrs, stays
// valid, and counts what it left out.
func TestAttributeBudget(t *testing.T) {
	attrs := make([]*commonpb.KeyValue, 0, 300)
	for i := range 300 {
		attrs = append(attrs, kv(fmt.Sprintf("k%03d", i), str(strings.Repeat("v", 40))))
	}
	data := &logspb.LogsData{ResourceLogs: []*logspb.ResourceLogs{{
		Resource:  &resourcepb.Resource{Attributes: attrs},
		ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{{Attributes: attrs, SeverityText: strings.Repeat("é", 200), Body: str("b")}}}},
	}}}
	var c Converter
	n := 0
	c.Each(fromPB(data), t0, func(r *Record) {
		n++
		if len(r.SD) > MaxAttrs {
			t.Errorf("SD of %d bytes", len(r.SD))
		}
		f, err := wire.Scan(append([]byte("<1>1 - - - - - "), r.SD...))
		if err != nil || !bytes.Equal(f.StructuredData, r.SD) {
			t.Fatalf("SD does not scan: %v", err)
		}
		kept, dropped := 0, ""
		for p := range wire.SDParams(r.SD) {
			if string(p.ID) != wire.SDIDOtel {
				kept++
			} else if string(p.Name) == "dropped_attributes_count" {
				dropped = string(p.Value)
			}
		}
		if want := fmt.Sprint(600 - kept); dropped != want || kept < 50 {
			t.Errorf("kept %d, dropped_attributes_count %q, want %s", kept, dropped, want)
		}
	})
	if n != 1 {
		t.Fatalf("%d records", n)
	}
}

func TestPriority(t *testing.T) {
	tests := []struct {
		n    logspb.SeverityNumber
		text string
		want uint8
	}{
		{logspb.SeverityNumber_SEVERITY_NUMBER_TRACE, "", 191}, {logspb.SeverityNumber_SEVERITY_NUMBER_DEBUG4, "", 191},
		{logspb.SeverityNumber_SEVERITY_NUMBER_INFO, "", 190}, {logspb.SeverityNumber_SEVERITY_NUMBER_WARN3, "", 188},
		{logspb.SeverityNumber_SEVERITY_NUMBER_ERROR, "INFO", 187}, {logspb.SeverityNumber_SEVERITY_NUMBER_FATAL4, "", 186},
		{0, "Warning", 188}, {0, "err", 187}, {0, "CRITICAL", 186}, {0, "notice", 189}, {0, "", 190}, {0, "whatever", 190},
	}
	for _, tt := range tests {
		if got := Priority(int32(tt.n), tt.text); got != tt.want {
			t.Errorf("Priority(%v, %q) = %d, want %d", tt.n, tt.text, got, tt.want)
		}
	}
}

// FuzzRead: no body panics the decoder; whatever the generated types decode, the
// hand-written decoder decodes to the same (for JSON: whatever both decode, see
// json.go); and whatever decodes converts into SD a strict parser takes.
func FuzzRead(f *testing.F) {
	body, _ := proto.Marshal(sample())
	f.Add(body, false)
	js, _ := protojson.Marshal(sample())
	f.Add(js, true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		ct := ContentProtobuf
		if isJSON {
			ct = ContentJSON
		}
		req := httptest.NewRequest(http.MethodPost, Path, io.NopCloser(bytes.NewReader(b)))
		req.Header.Set("Content-Type", ct)
		_, data, err := Read(req, 1<<20)
		ref, refErr := referenceDecode(b, isJSON)
		switch {
		case refErr == nil && err != nil && !isJSON:
			t.Fatalf("the generated types decode %q, the decoder refuses it: %v", b, err)
		case refErr == nil && err == nil:
			if want := fromPB(ref); !equalData(data, want) {
				t.Fatalf("decoded %q as\n%#v\nthe generated types as\n%#v", b, data, want)
			}
		}
		if err != nil {
			return
		}
		var c Converter
		c.Each(data, t0, func(r *Record) {
			if len(r.SD) > MaxAttrs {
				t.Fatalf("SD of %d bytes", len(r.SD))
			}
			if len(r.SD) > 0 {
				if f, err := wire.Scan(append([]byte("<1>1 - - - - - "), r.SD...)); err != nil || !bytes.Equal(f.StructuredData, r.SD) {
					t.Fatalf("SD %q does not scan: %v", r.SD, err)
				}
			}
		})
	})
}
