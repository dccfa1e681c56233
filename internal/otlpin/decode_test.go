package otlpin

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
)

// The generated OTLP types, kept to check the hand-written decoders: referenceDecode
// is how Read decoded before (proto.Unmarshal; protojson after rewriting hex ids),
// fromPB turns its result into LogsData.

func referenceDecode(b []byte, isJSON bool) (*logspb.LogsData, error) {
	data := &logspb.LogsData{}
	var err error
	if isJSON {
		b, err = hexIDsToBase64(b)
		if err == nil {
			err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, data)
		}
	} else {
		err = proto.Unmarshal(b, data)
	}
	return data, err
}

func fromPB(d *logspb.LogsData) *LogsData {
	out := &LogsData{}
	for _, rl := range d.GetResourceLogs() {
		o := ResourceLogs{Resource: kvsFromPB(rl.GetResource().GetAttributes())}
		for _, sl := range rl.GetScopeLogs() {
			so := ScopeLogs{Scope: Scope{Name: sl.GetScope().GetName(), Version: sl.GetScope().GetVersion(),
				Attributes: kvsFromPB(sl.GetScope().GetAttributes())}}
			for _, lr := range sl.GetLogRecords() {
				so.LogRecords = append(so.LogRecords, LogRecord{
					TimeUnixNano: lr.GetTimeUnixNano(), ObservedTimeUnixNano: lr.GetObservedTimeUnixNano(),
					SeverityNumber: int32(lr.GetSeverityNumber()), SeverityText: lr.GetSeverityText(),
					Body: valueFromPB(lr.GetBody()), Attributes: kvsFromPB(lr.GetAttributes()),
					DroppedAttributesCount: lr.GetDroppedAttributesCount(), Flags: lr.GetFlags(),
					TraceID: nilIfEmpty(lr.GetTraceId()), SpanID: nilIfEmpty(lr.GetSpanId()), EventName: lr.GetEventName(),
				})
			}
			o.ScopeLogs = append(o.ScopeLogs, so)
		}
		out.ResourceLogs = append(out.ResourceLogs, o)
	}
	return out
}

func kvsFromPB(kvs []*commonpb.KeyValue) []KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, KeyValue{Key: kv.GetKey(), Value: valueFromPB(kv.GetValue())})
	}
	return out
}

func valueFromPB(v *commonpb.AnyValue) AnyValue {
	switch x := v.GetValue().(type) {
	case nil:
		return AnyValue{}
	case *commonpb.AnyValue_StringValue:
		return AnyValue{Kind: KindString, Str: x.StringValue}
	case *commonpb.AnyValue_BoolValue:
		return AnyValue{Kind: KindBool, Bool: x.BoolValue}
	case *commonpb.AnyValue_IntValue:
		return AnyValue{Kind: KindInt, Int: x.IntValue}
	case *commonpb.AnyValue_DoubleValue:
		return AnyValue{Kind: KindDouble, Double: x.DoubleValue}
	case *commonpb.AnyValue_BytesValue:
		return AnyValue{Kind: KindBytes, Bytes: nilIfEmpty(x.BytesValue)}
	case *commonpb.AnyValue_ArrayValue:
		a := AnyValue{Kind: KindArray}
		for _, e := range x.ArrayValue.GetValues() {
			a.Array = append(a.Array, valueFromPB(e))
		}
		return a
	case *commonpb.AnyValue_KvlistValue:
		return AnyValue{Kind: KindKVList, KVList: kvsFromPB(x.KvlistValue.GetValues())}
	}
	return AnyValue{Kind: KindOther}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// equalData compares decoded requests, empty and nil slices alike and NaNs equal.
func equalData(a, b *LogsData) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(d *LogsData) *LogsData {
	out := &LogsData{}
	for _, rl := range d.ResourceLogs {
		o := ResourceLogs{Resource: normKVs(rl.Resource)}
		for _, sl := range rl.ScopeLogs {
			so := ScopeLogs{Scope: Scope{Name: sl.Scope.Name, Version: sl.Scope.Version, Attributes: normKVs(sl.Scope.Attributes)}}
			for _, lr := range sl.LogRecords {
				lr.Body = normValue(lr.Body)
				lr.Attributes = normKVs(lr.Attributes)
				lr.TraceID, lr.SpanID = nilIfEmpty(lr.TraceID), nilIfEmpty(lr.SpanID)
				so.LogRecords = append(so.LogRecords, lr)
			}
			o.ScopeLogs = append(o.ScopeLogs, so)
		}
		out.ResourceLogs = append(out.ResourceLogs, o)
	}
	return out
}

func normKVs(kvs []KeyValue) []KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = KeyValue{Key: kv.Key, Value: normValue(kv.Value)}
	}
	return out
}

func normValue(v AnyValue) AnyValue {
	v.Bytes = nilIfEmpty(v.Bytes)
	if math.IsNaN(v.Double) {
		v.Double = 0 // NaN != NaN; the kind still tells
		v.Str = "NaN"
	}
	if len(v.Array) == 0 {
		v.Array = nil
	} else {
		arr := make([]AnyValue, len(v.Array))
		for i := range v.Array {
			arr[i] = normValue(v.Array[i])
		}
		v.Array = arr
	}
	v.KVList = normKVs(v.KVList)
	return v
}

// TestDecodeMatchesGenerated: requests an SDK writes, in protobuf and JSON, and
// protobuf's corner cases (a field twice, a known field with another wire type,
// unknown fields and groups, a oneof given twice) decode as the generated types do.
func TestDecodeMatchesGenerated(t *testing.T) {
	full, err := proto.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	// Hand-made wire for protobuf's corner cases.
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	kv := func(k string) []byte { return bytesField(1, bytesField(1, []byte(k))) } // Resource.attributes
	group := cat(protowire.AppendTag(nil, 98, protowire.StartGroupType), varint(1, 1), protowire.AppendTag(nil, 98, protowire.EndGroupType))
	anyArray := func(elem []byte) []byte { return bytesField(5, bytesField(5, bytesField(1, elem))) } // body: array of one
	pbCases := map[string][]byte{
		"sample": full,
		"empty":  nil,
		// The resource twice (merged), an unknown varint field and a group.
		"merged": bytesField(1, cat(bytesField(1, kv("k1")), bytesField(1, kv("k2")), varint(99, 1), group)),
		// A record whose time comes as a varint (another wire type: an unknown field),
		// whose body is a string, then an int (the int wins), then an array twice (one
		// array of both values), and whose severity is given twice (the last wins).
		"oneofs": bytesField(1, bytesField(2, bytesField(2, cat(varint(1, 5),
			bytesField(5, bytesField(1, []byte("x"))), bytesField(5, varint(3, 7)),
			anyArray(nil), anyArray(varint(3, 1)), varint(2, 9), varint(2, 13))))),
	}
	for name, b := range pbCases {
		t.Run("protobuf/"+name, func(t *testing.T) {
			ref, refErr := referenceDecode(b, false)
			var got LogsData
			err := decodeProto(b, &got)
			if refErr != nil || err != nil {
				t.Fatalf("generated: %v, hand-written: %v", refErr, err)
			}
			if want := fromPB(ref); !equalData(&got, want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, *want)
			}
		})
	}
	jsCases := map[string][]byte{
		"sample": js,
		"sdk": []byte(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},` +
			`"scopeLogs":[{"scope":{"name":"lib","version":"1"},"logRecords":[{"timeUnixNano":"1764064800123456789",` +
			`"observedTimeUnixNano":1764064800123456789,"severityNumber":13,"severityText":"WARN","body":{"stringValue":"hi"},` +
			`"attributes":[{"key":"n","value":{"intValue":"42"}},{"key":"f","value":{"doubleValue":"NaN"}},{"key":"b","value":{"bytesValue":"aGk"}},` +
			`{"key":"l","value":{"arrayValue":{"values":[{"boolValue":true},{"kvlistValue":{"values":[{"key":"x","value":{"doubleValue":1.5}}]}}]}}}],` +
			`"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","flags":1,"eventName":"e","droppedAttributesCount":"2"}]}]}],"unknown":{"x":1}}`),
		"proto names": []byte(`{"resource_logs":[{"scope_logs":[{"log_records":[{"time_unix_nano":"5","severity_number":"SEVERITY_NUMBER_ERROR2",` +
			`"severity_text":"E","trace_id":"S/kvNXezTaajzpKdDg5HNg==","body":{"int_value":1e3}}]}]}]}`),
		"nulls": []byte(`{"resourceLogs":[{"resource":null,"scopeLogs":[{"scope":null,"logRecords":[{"body":null,"severityText":null}]}]}]}`),
		// Keys that only fold to field names are unknown fields to protobuf (encoding/json
		// alone would take them); escaped keys that spell a name exactly are that field.
		"folded keys": []byte(`{"ResourceLogs":[{}],"resourceLogs":[{"scopeLogs":[{"logRecords":[{"SeverityText":"no",` +
			`"severityText":"yes","body":{"StringValue":"no"},"\u0061ttributes":[{"key":"k","value":{"boolValue":true}}],` +
			`"\u017fpanId":"00f067aa0ba902b7","eventname":"no"}]}]}]}`),
	}
	for name, b := range jsCases {
		t.Run("json/"+name, func(t *testing.T) {
			ref, refErr := referenceDecode(b, true)
			var got LogsData
			err := decodeJSON(b, &got)
			if refErr != nil || err != nil {
				t.Fatalf("protojson: %v, hand-written: %v", refErr, err)
			}
			if want := fromPB(ref); !equalData(&got, want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, *want)
			}
		})
	}
	// What both refuse: truncation, a bad tag, invalid UTF-8 in a kept string.
	for name, b := range map[string][]byte{
		"truncated":  full[:len(full)-3],
		"field zero": {0x00, 0x01},
		"bad utf-8":  {0x0a, 0x09, 0x12, 0x07, 0x12, 0x05, 0x1a, 0x03, 0xff, 0xfe, 0xfd},
		"end group":  {0x0c},
	} {
		t.Run("refused/"+name, func(t *testing.T) {
			var got LogsData
			if _, refErr := referenceDecode(b, false); refErr == nil {
				t.Fatalf("the generated types take %q", b)
			}
			if err := decodeProto(b, &got); err == nil {
				t.Fatalf("decodeProto takes %q", b)
			}
		})
	}
}

// hexIDsToBase64 rewrites traceId and spanId of every log record from the hex OTLP
// JSON uses into the base64 protojson expects for bytes fields (OTLP's one departure
// from the proto3 JSON mapping).
func hexIDsToBase64(b []byte) ([]byte, error) {
	if !bytes.Contains(b, []byte("Id")) && !bytes.Contains(b, []byte("_id")) {
		return b, nil
	}
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, err
	}
	changed := false
	for _, rl := range list(doc, "resourceLogs", "resource_logs") {
		for _, sl := range list(rl, "scopeLogs", "scope_logs") {
			for _, lr := range list(sl, "logRecords", "log_records") {
				m, ok := lr.(map[string]any)
				if !ok {
					continue
				}
				for _, k := range []string{"traceId", "trace_id", "spanId", "span_id"} {
					s, ok := m[k].(string)
					if !ok || s == "" {
						continue
					}
					raw, err := hex.DecodeString(s)
					if err != nil {
						continue // not OTLP's hex: let protojson try it as base64
					}
					m[k] = base64.StdEncoding.EncodeToString(raw)
					changed = true
				}
			}
		}
	}
	if !changed {
		return b, nil
	}
	return json.Marshal(doc)
}

func list(v any, keys ...string) []any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, k := range keys {
		if l, ok := m[k].([]any); ok {
			return l
		}
	}
	return nil
}

// BenchmarkDecodeJSON: the hand-written JSON decoder on an SDK-shaped body (100
// records with hex trace and span ids, as OTLP/JSON sends them), the key scan it
// starts with (exactKeys) on its own, and the peer: protojson with the generated
// types after the hex ids are rewritten for it (referenceDecode, how Read decoded
// before), and protojson alone on the same body with base64 ids (what protojson
// costs when there is nothing to rewrite).
func BenchmarkDecodeJSON(b *testing.B) {
	rec := `{"timeUnixNano":"1764064800123456789","observedTimeUnixNano":"1764064800123456789","severityNumber":9,` +
		`"severityText":"INFO","body":{"stringValue":"GET /checkout 200 12ms"},"attributes":[{"key":"http.route",` +
		`"value":{"stringValue":"/checkout"}},{"key":"n","value":{"intValue":"42"}}],` +
		`"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","flags":1}`
	recs := make([]string, 100)
	for i := range recs {
		recs[i] = rec
	}
	body := []byte(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},` +
		`"scopeLogs":[{"scope":{"name":"lib","version":"1"},"logRecords":[` + strings.Join(recs, ",") + `]}]}]}`)
	b64, err := hexIDsToBase64(body)
	if err != nil {
		b.Fatal(err)
	}
	run := func(name string, in []byte, decode func([]byte) error) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("decodeJSON", body, func(in []byte) error { var d LogsData; return decodeJSON(in, &d) })
	run("exactKeys", body, func(in []byte) error {
		if len(exactKeys(in)) != len(in) {
			return errors.New("keys changed")
		}
		return nil
	})
	run("reference", body, func(in []byte) error { _, err := referenceDecode(in, true); return err })
	run("protojson-base64", b64, func(in []byte) error {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(in, &logspb.LogsData{})
	})
}
