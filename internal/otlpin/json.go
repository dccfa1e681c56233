package otlpin

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
)

// OTLP/HTTP JSON (the protobuf JSON mapping with OTLP's departures: trace and span
// ids in hex, enums as numbers) read with encoding/json into LogsData. As protobuf's
// JSON reader it takes the lowerCamelCase and the proto field names, 64-bit integers
// as numbers or strings, enums as numbers or names, bytes in standard or URL-safe
// base64, and ignores unknown fields; it is laxer than protobuf's about duplicate
// keys (the last wins). encoding/json matches keys without regard to case, protobuf's
// reader exactly: exactKeys first blanks every key that only folds to a field name,
// so that "ResourceLogs" is an unknown field here as there and is ignored.
// TestDecodeMatchesGenerated and FuzzRead check it against protojson.

type jsonLogsData struct {
	ResourceLogs  []jsonResourceLogs `json:"resourceLogs"`
	ResourceLogs2 []jsonResourceLogs `json:"resource_logs"`
}

type jsonResourceLogs struct {
	Resource   *jsonResource   `json:"resource"`
	ScopeLogs  []jsonScopeLogs `json:"scopeLogs"`
	ScopeLogs2 []jsonScopeLogs `json:"scope_logs"`
}

type jsonResource struct {
	Attributes []jsonKeyValue `json:"attributes"`
}

type jsonScopeLogs struct {
	Scope       *jsonScope      `json:"scope"`
	LogRecords  []jsonLogRecord `json:"logRecords"`
	LogRecords2 []jsonLogRecord `json:"log_records"`
}

type jsonScope struct {
	Name       jsonStr        `json:"name"`
	Version    jsonStr        `json:"version"`
	Attributes []jsonKeyValue `json:"attributes"`
}

type jsonLogRecord struct {
	TimeUnixNano          jsonUint       `json:"timeUnixNano"`
	TimeUnixNano2         jsonUint       `json:"time_unix_nano"`
	ObservedTimeUnixNano  jsonUint       `json:"observedTimeUnixNano"`
	ObservedTimeUnixNano2 jsonUint       `json:"observed_time_unix_nano"`
	SeverityNumber        jsonEnum       `json:"severityNumber"`
	SeverityNumber2       jsonEnum       `json:"severity_number"`
	SeverityText          jsonStr        `json:"severityText"`
	SeverityText2         jsonStr        `json:"severity_text"`
	Body                  *jsonValue     `json:"body"`
	Attributes            []jsonKeyValue `json:"attributes"`
	DroppedAttributes     jsonUint       `json:"droppedAttributesCount"`
	DroppedAttributes2    jsonUint       `json:"dropped_attributes_count"`
	Flags                 jsonUint       `json:"flags"`
	TraceID               jsonID         `json:"traceId"`
	TraceID2              jsonID         `json:"trace_id"`
	SpanID                jsonID         `json:"spanId"`
	SpanID2               jsonID         `json:"span_id"`
	EventName             jsonStr        `json:"eventName"`
	EventName2            jsonStr        `json:"event_name"`
}

type jsonKeyValue struct {
	Key   jsonStr    `json:"key"`
	Value *jsonValue `json:"value"`
}

type jsonValue struct {
	v AnyValue
}

// decodeJSON decodes an OTLP/HTTP JSON body into data.
func decodeJSON(b []byte, data *LogsData) error {
	var doc jsonLogsData
	d := json.NewDecoder(bytes.NewReader(exactKeys(b)))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return err
	}
	if d.More() {
		return errors.New("data after the JSON object")
	}
	for _, rl := range first(doc.ResourceLogs, doc.ResourceLogs2) {
		out := ResourceLogs{}
		if rl.Resource != nil {
			out.Resource = keyValues(rl.Resource.Attributes)
		}
		for _, sl := range first(rl.ScopeLogs, rl.ScopeLogs2) {
			o := ScopeLogs{}
			if sc := sl.Scope; sc != nil {
				o.Scope = Scope{Name: string(sc.Name), Version: string(sc.Version), Attributes: keyValues(sc.Attributes)}
			}
			recs := first(sl.LogRecords, sl.LogRecords2)
			for i := range recs {
				o.LogRecords = append(o.LogRecords, recs[i].record())
			}
			out.ScopeLogs = append(out.ScopeLogs, o)
		}
		data.ResourceLogs = append(data.ResourceLogs, out)
	}
	return nil
}

// fieldNames are the keys the JSON types take, from their tags.
var fieldNames = func() map[string]bool {
	names := map[string]bool{}
	for _, v := range []any{jsonLogsData{}, jsonResourceLogs{}, jsonResource{}, jsonScopeLogs{}, jsonScope{},
		jsonLogRecord{}, jsonKeyValue{}, jsonAnyValue{}, jsonArrayValue{}, jsonKVListValue{}} {
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" {
				names[name] = true
			}
		}
	}
	return names
}()

// exactKeys returns b with every object key that is not one of fieldNames but equals
// one of them without regard to case (as encoding/json folds: "spanID", "ſpanId")
// replaced by "", which no field takes. b itself comes back when there is none, the
// common case. Only the keys are looked at: a string followed by a colon. Malformed
// input is left for the decoder to refuse.
func exactKeys(b []byte) []byte {
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		start, escaped := i, false
		for i++; i < len(b) && b[i] != '"'; i++ {
			if b[i] == '\\' {
				escaped = true
				i++
			}
		}
		if i >= len(b) {
			break
		}
		end := i + 1
		k := end
		for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
			k++
		}
		if k == len(b) || b[k] != ':' || !foldsToField(b[start:end], escaped) {
			continue
		}
		out = append(append(out, b[last:start]...), `""`...)
		last = end
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// foldsToField reports whether the quoted key is not a field name but folds to one.
func foldsToField(quoted []byte, escaped bool) bool {
	raw := quoted[1 : len(quoted)-1]
	if !escaped && fieldNames[string(raw)] { // the common case, without a copy
		return false
	}
	key := string(raw)
	if escaped && (json.Unmarshal(quoted, &key) != nil || fieldNames[key]) {
		return false
	}
	for name := range fieldNames {
		if strings.EqualFold(name, key) {
			return true
		}
	}
	return false
}

func first[T any](a, b []T) []T {
	if a != nil {
		return a
	}
	return b
}

func (r *jsonLogRecord) record() LogRecord {
	// A field given under both names takes the first that is set (protojson refuses
	// such a body).
	out := LogRecord{
		TimeUnixNano:           uint64(cmp.Or(r.TimeUnixNano, r.TimeUnixNano2)),
		ObservedTimeUnixNano:   uint64(cmp.Or(r.ObservedTimeUnixNano, r.ObservedTimeUnixNano2)),
		SeverityNumber:         int32(cmp.Or(r.SeverityNumber, r.SeverityNumber2)),
		SeverityText:           string(cmp.Or(r.SeverityText, r.SeverityText2)),
		Attributes:             keyValues(r.Attributes),
		DroppedAttributesCount: uint32(cmp.Or(r.DroppedAttributes, r.DroppedAttributes2)), //nolint:gosec // a uint32 field, truncated
		Flags:                  uint32(r.Flags),                                           //nolint:gosec // as above
		TraceID:                firstID(r.TraceID, r.TraceID2),
		SpanID:                 firstID(r.SpanID, r.SpanID2),
		EventName:              string(cmp.Or(r.EventName, r.EventName2)),
	}
	if r.Body != nil {
		out.Body = r.Body.v
	}
	return out
}

func firstID(a, b jsonID) []byte {
	if len(a) > 0 {
		return a
	}
	return b
}

func keyValues(kvs []jsonKeyValue) []KeyValue {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i].Key = string(kv.Key)
		if kv.Value != nil {
			out[i].Value = kv.Value.v
		}
	}
	return out
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// jsonStr is a string that may be null.
type jsonStr string

func (s *jsonStr) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = jsonStr(v)
	return nil
}

// jsonUint is an unsigned integer given as a number or a string.
type jsonUint uint64

func (u *jsonUint) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	s := unquote(b)
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		r, ok := integer(s)
		if !ok || r.Sign() < 0 || !r.IsUint64() {
			return fmt.Errorf("invalid unsigned integer %s", b)
		}
		v = r.Uint64()
	}
	*u = jsonUint(v)
	return nil
}

// jsonInt is a signed integer given as a number or a string.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	s := unquote(b)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		r, ok := integer(s)
		if !ok || !r.IsInt64() {
			return fmt.Errorf("invalid integer %s", b)
		}
		v = r.Int64()
	}
	*n = jsonInt(v)
	return nil
}

// integer reads a number written with a fraction or an exponent ("1.5e3") exactly,
// when it is an integer, as protobuf's JSON reader does.
func integer(s string) (*big.Int, bool) {
	if len(s) > 64 { // "1e1000000" would take megabytes
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || !r.IsInt() {
		return nil, false
	}
	return r.Num(), true
}

// jsonEnum is a SeverityNumber given as a number or by name.
type jsonEnum int32

func (e *jsonEnum) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, `"`) {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		for i, n := range severityNames {
			if n == name {
				*e = jsonEnum(i) //nolint:gosec // the table has 25 entries
				return nil
			}
		}
		return fmt.Errorf("unknown severity number %q", name)
	}
	var n jsonInt
	if err := n.UnmarshalJSON(b); err != nil {
		return err
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return fmt.Errorf("severity number %d out of range", n)
	}
	*e = jsonEnum(n)
	return nil
}

// severityNames are the SeverityNumber values' names, by number.
var severityNames = func() []string {
	names := []string{"SEVERITY_NUMBER_UNSPECIFIED"}
	for _, level := range []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"} {
		names = append(names, "SEVERITY_NUMBER_"+level)
		for i := 2; i <= 4; i++ {
			names = append(names, fmt.Sprintf("SEVERITY_NUMBER_%s%d", level, i))
		}
	}
	return names
}()

// jsonID is a trace or span id: hex as OTLP/JSON writes it, or base64 as the plain
// protobuf JSON mapping does.
type jsonID []byte

func (id *jsonID) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if raw, err := hex.DecodeString(s); err == nil {
		*id = raw
		return nil
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return fmt.Errorf("id %q is neither hex nor base64", s)
	}
	*id = raw
	return nil
}

// decodeBase64 takes standard or URL-safe base64, padded or not.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
}

func unquote(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// jsonAnyValue is AnyValue's JSON form; one member is set.
type jsonAnyValue struct {
	StringValue  *jsonStr         `json:"stringValue"`
	StringValue2 *jsonStr         `json:"string_value"`
	BoolValue    *bool            `json:"boolValue"`
	BoolValue2   *bool            `json:"bool_value"`
	IntValue     *jsonInt         `json:"intValue"`
	IntValue2    *jsonInt         `json:"int_value"`
	DoubleValue  *jsonDouble      `json:"doubleValue"`
	DoubleValue2 *jsonDouble      `json:"double_value"`
	ArrayValue   *jsonArrayValue  `json:"arrayValue"`
	ArrayValue2  *jsonArrayValue  `json:"array_value"`
	KVListValue  *jsonKVListValue `json:"kvlistValue"`
	KVListValue2 *jsonKVListValue `json:"kvlist_value"`
	BytesValue   *jsonBytes       `json:"bytesValue"`
	BytesValue2  *jsonBytes       `json:"bytes_value"`
	Strindex     *jsonInt         `json:"stringValueStrindex"`
	Strindex2    *jsonInt         `json:"string_value_strindex"`
}

type jsonArrayValue struct {
	Values []*jsonValue `json:"values"`
}

type jsonKVListValue struct {
	Values []jsonKeyValue `json:"values"`
}

func (v *jsonValue) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var j jsonAnyValue
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	a := &v.v
	switch {
	case j.StringValue != nil || j.StringValue2 != nil:
		a.Kind = KindString
		if j.StringValue != nil {
			a.Str = string(*j.StringValue)
		} else {
			a.Str = string(*j.StringValue2)
		}
	case j.BoolValue != nil || j.BoolValue2 != nil:
		a.Kind = KindBool
		a.Bool = j.BoolValue != nil && *j.BoolValue || j.BoolValue2 != nil && *j.BoolValue2
	case j.IntValue != nil || j.IntValue2 != nil:
		a.Kind = KindInt
		if j.IntValue != nil {
			a.Int = int64(*j.IntValue)
		} else {
			a.Int = int64(*j.IntValue2)
		}
	case j.DoubleValue != nil || j.DoubleValue2 != nil:
		a.Kind = KindDouble
		if j.DoubleValue != nil {
			a.Double = float64(*j.DoubleValue)
		} else {
			a.Double = float64(*j.DoubleValue2)
		}
	case j.ArrayValue != nil || j.ArrayValue2 != nil:
		a.Kind = KindArray
		arr := j.ArrayValue
		if arr == nil {
			arr = j.ArrayValue2
		}
		for _, e := range arr.Values {
			if e == nil {
				a.Array = append(a.Array, AnyValue{})
			} else {
				a.Array = append(a.Array, e.v)
			}
		}
	case j.KVListValue != nil || j.KVListValue2 != nil:
		a.Kind = KindKVList
		l := j.KVListValue
		if l == nil {
			l = j.KVListValue2
		}
		a.KVList = keyValues(l.Values)
	case j.BytesValue != nil || j.BytesValue2 != nil:
		a.Kind = KindBytes
		if j.BytesValue != nil {
			a.Bytes = *j.BytesValue
		} else {
			a.Bytes = *j.BytesValue2
		}
	case j.Strindex != nil || j.Strindex2 != nil:
		a.Kind = KindOther
	}
	return nil
}

// jsonDouble is a number, or "NaN", "Infinity", "-Infinity" or a number in a string.
type jsonDouble float64

func (d *jsonDouble) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	s := unquote(b)
	switch s {
	case "NaN":
		*d = jsonDouble(math.NaN())
		return nil
	case "Infinity":
		*d = jsonDouble(math.Inf(1))
		return nil
	case "-Infinity":
		*d = jsonDouble(math.Inf(-1))
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("invalid double %s", b)
	}
	*d = jsonDouble(f)
	return nil
}

// jsonBytes is base64, standard or URL-safe, padded or not.
type jsonBytes []byte

func (j *jsonBytes) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	raw, err := decodeBase64(s)
	if err != nil {
		return fmt.Errorf("bytes %q: %w", s, err)
	}
	*j = raw
	return nil
}
