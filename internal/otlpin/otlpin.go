// Package otlpin takes OpenTelemetry logs over OTLP/HTTP (POST /v1/logs, protobuf or
// JSON, gzip or not) and turns each log record into a kubeplex message: a syslog
// priority from the severity, a time, a text from the body and the record's fields
// and attributes as RFC 5424 STRUCTURED-DATA (the otel@, log@ and res@32473 elements
// of docs/drains.md). The collector's loopback endpoint and the router's ingest both
// serve it, so a record means the same wherever it comes in.
//
// The requests are decoded by hand (decode.go with protowire, json.go with
// encoding/json), not through the generated OTLP types and the protobuf runtime,
// which were most of the collector's binary; the two small answers are written with
// protowire. The tests check the decoders against the generated types.
package otlpin

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Path is where OTLP/HTTP exporters send logs (the SDKs' default is
// http://localhost:4318/v1/logs).
const Path = "/v1/logs"

// Content types of OTLP/HTTP.
const (
	ContentProtobuf = "application/x-protobuf"
	ContentJSON     = "application/json"
)

// MaxAttrs bounds the STRUCTURED-DATA of one record; the router keeps at most as much
// per message (router/message.MaxAttrs).
const MaxAttrs = 4096

// Limits bound one request.
type Limits struct {
	// MaxBody bounds the body, compressed and decompressed.
	MaxBody int
	// MaxText refuses (as a partial success) a record whose text is longer; shorter
	// texts over 10,000 bytes are split by the receiver as any line.
	MaxText int
}

// Record is one log record as a message. Text and SD are only valid during the emit
// call that receives them.
type Record struct {
	Priority uint8
	Time     time.Time
	SD       []byte
	Text     []byte
	// Service is the resource's service.name attribute, or "".
	Service string
}

// Result is what one request did.
type Result struct {
	Accepted, Rejected int
}

// RequestError is an answer other than 200: Status and a message for the sender.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return fmt.Sprintf("otlp %d: %s", e.Status, e.Msg) }

// Handle reads one OTLP/HTTP logs request, passes every record to emit and writes the
// OTLP answer: 200 (with partial_success when some records were refused), 400 for a
// body that does not decode, 413 over MaxBody, 415 for another content type. emit
// returns false to refuse a record (it counts as rejected). A body is taken whole or
// not at all: nothing is emitted before it has decoded.
func Handle(w http.ResponseWriter, req *http.Request, lim Limits, now time.Time, emit func(*Record) bool) (Result, error) {
	enc, data, err := Read(req, lim.MaxBody)
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			re = &RequestError{Status: http.StatusBadRequest, Msg: err.Error()}
		}
		WriteError(w, enc, re.Status, re.Msg)
		return Result{}, err
	}
	var res Result
	tooLong := 0
	var c Converter
	c.Each(data, now, func(r *Record) {
		if lim.MaxText > 0 && len(r.Text) > lim.MaxText {
			tooLong++
			res.Rejected++
			return
		}
		if emit(r) {
			res.Accepted++
		} else {
			res.Rejected++
		}
	})
	msg := ""
	switch {
	case tooLong > 0 && tooLong == res.Rejected:
		msg = fmt.Sprintf("%d log records with a body over %d bytes refused", tooLong, lim.MaxText)
	case res.Rejected > 0:
		msg = fmt.Sprintf("%d log records refused", res.Rejected)
	}
	WriteSuccess(w, enc, res.Rejected, msg)
	return res, nil
}

// Read decodes the body of an OTLP/HTTP logs request. The encoding it returns (the
// request's content type, protobuf when unknown) is the one to answer in.
func Read(req *http.Request, maxBody int) (string, *LogsData, error) {
	if maxBody <= 0 {
		maxBody = wire.DefaultMaxBody
	}
	enc := ContentProtobuf
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch mt {
	case ContentProtobuf:
	case ContentJSON:
		enc = ContentJSON
	default:
		return enc, nil, &RequestError{Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("content type %q: OTLP/HTTP is %s or %s", mt, ContentProtobuf, ContentJSON)}
	}
	body := io.Reader(http.MaxBytesReader(nil, req.Body, int64(maxBody)))
	switch ce := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return enc, nil, bodyError(err, maxBody)
		}
		defer func() { _ = zr.Close() }() // only repeats an error ReadAll saw
		body = zr
	default:
		return enc, nil, &RequestError{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("content encoding %q", ce)}
	}
	// One byte past the limit tells "exactly the limit" from "over it"; the bound holds
	// after decompression too, so a gzip bomb stops at maxBody.
	b, err := io.ReadAll(io.LimitReader(body, int64(maxBody)+1))
	if err != nil {
		return enc, nil, bodyError(err, maxBody)
	}
	if len(b) > maxBody {
		return enc, nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body over %d bytes", maxBody)}
	}
	data := &LogsData{}
	if enc == ContentJSON {
		err = decodeJSON(b, data)
	} else {
		err = decodeProto(b, data)
	}
	if err != nil {
		return enc, nil, &RequestError{Status: http.StatusBadRequest, Msg: "malformed ExportLogsServiceRequest: " + err.Error()}
	}
	return enc, data, nil
}

func bodyError(err error, maxBody int) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &RequestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body over %d bytes", maxBody)}
	}
	return &RequestError{Status: http.StatusBadRequest, Msg: "read body: " + err.Error()}
}

// WriteSuccess writes 200 with an ExportLogsServiceResponse in enc, with
// partial_success when rejected > 0.
func WriteSuccess(w http.ResponseWriter, enc string, rejected int, msg string) {
	w.Header().Set("Content-Type", enc)
	var body []byte
	if enc == ContentJSON {
		if rejected > 0 {
			body = fmt.Appendf(nil, `{"partialSuccess":{"rejectedLogRecords":"%d","errorMessage":%s}}`, rejected, jsonString(msg))
		} else {
			body = []byte("{}")
		}
	} else if rejected > 0 {
		var ps []byte
		ps = protowire.AppendTag(ps, 1, protowire.VarintType)
		ps = protowire.AppendVarint(ps, uint64(rejected))
		ps = protowire.AppendTag(ps, 2, protowire.BytesType)
		ps = protowire.AppendString(ps, msg)
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendBytes(body, ps)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the sender went away: nothing to tell it
}

// WriteError writes status with a google.rpc.Status body in enc, as OTLP/HTTP asks.
func WriteError(w http.ResponseWriter, enc string, status int, msg string) {
	code := 3 // INVALID_ARGUMENT
	switch status {
	case http.StatusUnauthorized:
		code = 16 // UNAUTHENTICATED
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		code = 14 // UNAVAILABLE
	case http.StatusRequestEntityTooLarge:
		code = 8 // RESOURCE_EXHAUSTED
	}
	var body []byte
	if enc == ContentJSON {
		body = fmt.Appendf(nil, `{"code":%d,"message":%s}`, code, jsonString(msg))
	} else {
		enc = ContentProtobuf
		body = protowire.AppendTag(body, 1, protowire.VarintType)
		body = protowire.AppendVarint(body, uint64(code))
		body = protowire.AppendTag(body, 2, protowire.BytesType)
		body = protowire.AppendString(body, msg)
	}
	w.Header().Set("Content-Type", enc)
	w.WriteHeader(status)
	_, _ = w.Write(body) // the sender went away: nothing to tell it
}

func jsonString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// Converter turns records into messages, reusing its buffers across records.
type Converter struct {
	sd, res, scope, text, num []byte
}

// Each calls emit for every log record of data, in order. now stands in for a record
// with neither a time nor an observed time.
func (c *Converter) Each(data *LogsData, now time.Time, emit func(*Record)) {
	var r Record
	for i := range data.ResourceLogs {
		rl := &data.ResourceLogs[i]
		// A resource's attributes are the same for each of its records: render once.
		c.res = c.res[:0]
		r.Service = ""
		for _, kv := range rl.Resource {
			if kv.Key == "service.name" {
				r.Service = ""
				if kv.Value.Kind == KindString {
					r.Service = kv.Value.Str
				}
			}
		}
		resDropped := 0
		if len(rl.Resource) > 0 {
			c.res, resDropped = c.appendElement(c.res, wire.SDIDResource, rl.Resource, MaxAttrs/2)
		}
		for j := range rl.ScopeLogs {
			sl := &rl.ScopeLogs[j]
			scope := &sl.Scope
			// The scope's attributes, too, are rendered once for its records.
			c.scope = c.scope[:0]
			scDropped := 0
			if len(scope.Attributes) > 0 {
				c.scope, scDropped = c.appendElement(c.scope, wire.SDIDScope, scope.Attributes, MaxAttrs/4)
			}
			for k := range sl.LogRecords {
				lr := &sl.LogRecords[k]
				r.Priority = Priority(lr.SeverityNumber, lr.SeverityText)
				r.Time = recordTime(lr, now)
				c.text = AppendBody(c.text[:0], &lr.Body)
				r.Text = c.text
				c.sd = c.appendSD(c.sd[:0], lr, scope, resDropped+scDropped)
				r.SD = c.sd
				emit(&r)
			}
		}
	}
}

// appendSD writes the record's elements: otel@ (fields), log@ (attributes), then the
// resource's res@ and the scope's scope@, keeping the whole under MaxAttrs.
func (c *Converter) appendSD(dst []byte, lr *LogRecord, scope *Scope, resDropped int) []byte {
	start := len(dst)
	dropped := int(lr.DroppedAttributesCount) + resDropped
	// Record attributes first into the tail of dst, so that the otel@ element, which
	// carries their dropped count, can be written before them.
	var logEl []byte
	if attrs := lr.Attributes; len(attrs) > 0 {
		budget := MaxAttrs - len(c.res) - len(c.scope) - 768 // room for otel@ (at most ~720 bytes)
		var n int
		logEl, n = c.appendElement(nil, wire.SDIDLog, attrs, budget)
		dropped += n
	}
	mark := len(dst)
	dst = append(dst, '[')
	dst = append(dst, wire.SDIDOtel...)
	open := len(dst)
	if id := lr.TraceID; len(id) == 16 && !allZero(id) {
		dst = wire.AppendSDParam(dst, "trace_id", hexOf(c, id))
	}
	if id := lr.SpanID; len(id) == 8 && !allZero(id) {
		dst = wire.AppendSDParam(dst, "span_id", hexOf(c, id))
	}
	if f := lr.Flags & 0xff; f != 0 {
		dst = wire.AppendSDParam(dst, "flags", hexOf(c, []byte{byte(f)}))
	}
	dst = appendShort(dst, "severity_text", lr.SeverityText)
	dst = appendShort(dst, "event_name", lr.EventName)
	dst = appendShort(dst, "scope.name", scope.Name)
	dst = appendShort(dst, "scope.version", scope.Version)
	if dropped > 0 {
		dst = wire.AppendSDParam(dst, "dropped_attributes_count", strconv.Itoa(dropped))
	}
	if len(dst) == open {
		dst = dst[:mark] // no fields: no element
	} else {
		dst = append(dst, ']')
	}
	dst = append(dst, logEl...)
	if len(dst)-start+len(c.res) <= MaxAttrs {
		dst = append(dst, c.res...)
	}
	if len(dst)-start+len(c.scope) <= MaxAttrs {
		dst = append(dst, c.scope...)
	}
	return dst
}

// appendShort adds a field of the otel@ element, clipped to 128 bytes so that the
// element always fits beside the attributes.
func appendShort(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	if len(v) > 128 {
		cut := 128
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		v = v[:cut]
	}
	return wire.AppendSDParam(dst, name, v)
}

// appendElement writes "[id k="v" ...]" for attrs, leaving out (and counting) names SD
// cannot carry and attributes that would take the element past budget bytes.
func (c *Converter) appendElement(dst []byte, id string, attrs []KeyValue, budget int) ([]byte, int) {
	dropped := 0
	mark := len(dst)
	dst = append(dst, '[')
	dst = append(dst, id...)
	open := len(dst)
	for i := range attrs {
		kv := &attrs[i]
		if !wire.SDName(kv.Key) {
			dropped++
			continue
		}
		c.num = AppendValue(c.num[:0], &kv.Value)
		before := len(dst)
		dst = wire.AppendSDParam(dst, kv.Key, stringOf(c.num))
		if len(dst)-mark+1 > budget {
			dst = dst[:before]
			dropped++
		}
	}
	if len(dst) == open {
		return dst[:mark], dropped
	}
	return append(dst, ']'), dropped
}

// Priority maps an OpenTelemetry severity to an RFC 5424 priority of facility local7
// (as Logplex): TRACE and DEBUG → debug, INFO → info, WARN → warning, ERROR → error,
// FATAL → critical. Without a number, the severity text decides ("warn", "ERROR", ...);
// without either, info.
func Priority(n int32, text string) uint8 {
	const local7 = 23 * 8
	sev := uint8(6)
	switch {
	case n >= 1 && n <= 8:
		sev = 7
	case n >= 9 && n <= 12:
		sev = 6
	case n >= 13 && n <= 16:
		sev = 4
	case n >= 17 && n <= 20:
		sev = 3
	case n >= 21 && n <= 24:
		sev = 2
	case text != "":
		sev = severityOfText(text)
	}
	return local7 + sev
}

func severityOfText(s string) uint8 {
	s = strings.ToLower(s)
	for _, p := range []struct {
		prefix string
		sev    uint8
	}{{"emerg", 0}, {"alert", 1}, {"crit", 2}, {"fatal", 2}, {"err", 3}, {"warn", 4}, {"notice", 5},
		{"info", 6}, {"debug", 7}, {"trace", 7}} {
		if strings.HasPrefix(s, p.prefix) {
			return p.sev
		}
	}
	return 6
}

// recordTime is the record's time, else its observed time, else now. Nanoseconds
// that do not fit an int64 (past 2262) count as unset.
func recordTime(lr *LogRecord, now time.Time) time.Time {
	for _, ns := range []uint64{lr.TimeUnixNano, lr.ObservedTimeUnixNano} {
		if ns == 0 || ns > math.MaxInt64 {
			continue
		}
		return time.Unix(0, int64(ns)).UTC() // int64 nanoseconds end in 2262
	}
	return now
}

// AppendBody appends a record body as message text: a string as it is, any other
// value as compact JSON, nothing for an empty body.
func AppendBody(dst []byte, v *AnyValue) []byte {
	switch v.Kind {
	case KindNone:
		return dst
	case KindString:
		return append(dst, v.Str...)
	}
	return AppendJSON(dst, v)
}

// AppendValue appends an attribute value as an SD value: strings as they are,
// numbers and booleans as JSON writes them, bytes in base64, arrays and maps as
// compact JSON.
func AppendValue(dst []byte, v *AnyValue) []byte {
	switch v.Kind {
	case KindNone:
		return dst
	case KindString:
		return append(dst, v.Str...)
	case KindBytes:
		return base64.StdEncoding.AppendEncode(dst, v.Bytes)
	}
	return AppendJSON(dst, v)
}

// AppendJSON appends v as compact JSON: kvlists as objects (in order), arrays as
// arrays, bytes as base64 strings, non-finite doubles as strings.
func AppendJSON(dst []byte, v *AnyValue) []byte {
	switch v.Kind {
	case KindString:
		return appendJSONString(dst, v.Str)
	case KindBool:
		return strconv.AppendBool(dst, v.Bool)
	case KindInt:
		return strconv.AppendInt(dst, v.Int, 10)
	case KindDouble:
		if math.IsNaN(v.Double) || math.IsInf(v.Double, 0) {
			return appendJSONString(dst, strconv.FormatFloat(v.Double, 'g', -1, 64))
		}
		return strconv.AppendFloat(dst, v.Double, 'g', -1, 64)
	case KindBytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes)
		return append(dst, '"')
	case KindArray:
		dst = append(dst, '[')
		for i := range v.Array {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSON(dst, &v.Array[i])
		}
		return append(dst, ']')
	case KindKVList:
		dst = append(dst, '{')
		for i := range v.KVList {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, v.KVList[i].Key)
			dst = append(dst, ':')
			dst = AppendJSON(dst, &v.KVList[i].Value)
		}
		return append(dst, '}')
	}
	return append(dst, "null"...)
}

func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	return append(dst, '"')
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// hexOf is hex.EncodeToString without a new allocation per call beyond the string.
func hexOf(c *Converter, b []byte) string {
	c.num = hex.AppendEncode(c.num[:0], b)
	return string(c.num)
}

func stringOf(b []byte) string { return string(b) }
