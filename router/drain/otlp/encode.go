package otlp

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
)

// Attribute names. Resource attributes follow the OpenTelemetry semantic conventions
// where one exists (service.name, k8s.namespace.name); the rest are kubeplex's own.
const (
	AttrServiceName = "service.name"
	AttrNamespace   = "k8s.namespace.name"
	AttrApp         = "kubeplex.app"
	AttrDrainToken  = "kubeplex.drain.token"
	AttrSource      = "kubeplex.source"
	AttrProcess     = "kubeplex.process"
	// ScopeName is the instrumentation scope of records that name none.
	ScopeName = "kubeplex.io/router"
)

// severities maps the syslog severity (RFC 5424 §6.2.1, the priority's low 3 bits)
// to OpenTelemetry's number and a text, as the log data model's syslog mapping.
var severities = [8]struct {
	num  logs.SeverityNumber
	text string
}{
	{logs.SeverityNumber_SEVERITY_NUMBER_FATAL, "EMERGENCY"},
	{logs.SeverityNumber_SEVERITY_NUMBER_ERROR3, "ALERT"},
	{logs.SeverityNumber_SEVERITY_NUMBER_ERROR2, "CRITICAL"},
	{logs.SeverityNumber_SEVERITY_NUMBER_ERROR, "ERROR"},
	{logs.SeverityNumber_SEVERITY_NUMBER_WARN, "WARNING"},
	{logs.SeverityNumber_SEVERITY_NUMBER_INFO2, "NOTICE"},
	{logs.SeverityNumber_SEVERITY_NUMBER_INFO, "INFORMATIONAL"},
	{logs.SeverityNumber_SEVERITY_NUMBER_DEBUG, "DEBUG"},
}

// Severity returns the OpenTelemetry severity number and text of a syslog priority.
func Severity(pri uint8) (logs.SeverityNumber, string) {
	s := severities[pri&7]
	return s.num, s.text
}

// arena hands out T values from chunks that are never moved, so pointers to them
// stay valid for the whole batch; reset makes them all reusable. Values come back
// with whatever the last batch left in them: callers set every field.
type arena[T any] struct {
	chunks [][]T
	n      int
}

const arenaChunk = 256

func (a *arena[T]) next() *T {
	c, o := a.n/arenaChunk, a.n%arenaChunk
	if c == len(a.chunks) {
		a.chunks = append(a.chunks, make([]T, arenaChunk))
	}
	a.n++
	return &a.chunks[c][o]
}

func (a *arena[T]) reset() { a.n = 0 }

// encoder turns a batch into one export request. Every message of a drain belongs
// to one app: records share one ResourceLogs unless their producer gave resource
// attributes or an instrumentation scope of its own (OTLP input), and then runs of
// records with the same ones share one. Messages, attribute values and pointer
// lists come from arenas kept from batch to batch, so a steady drain allocates
// nothing per message; strings point into the batch, valid until after the send.
type encoder struct {
	req  collogs.ExportLogsServiceRequest
	base []*common.KeyValue // kubeplex's resource attributes
	// Names in base: a producer's resource attribute of the same name is left out.
	baseNames []string

	res   arena[logs.ResourceLogs]
	ress  arena[resource.Resource]
	scs   arena[logs.ScopeLogs]
	scps  arena[common.InstrumentationScope]
	recs  arena[logs.LogRecord]
	kvs   arena[common.KeyValue]
	vals  arena[common.AnyValue]
	strs  arena[common.AnyValue_StringValue]
	rlp   []*logs.ResourceLogs
	slp   []*logs.ScopeLogs
	rp    []*logs.LogRecord
	kp    []*common.KeyValue
	bytes []byte // trace and span ids
}

func newEncoder(cfg *drain.Config) *encoder {
	e := &encoder{}
	ns, name, ok := strings.Cut(cfg.App, "/")
	if !ok {
		ns, name = "", cfg.App
	}
	e.base = []*common.KeyValue{str(AttrServiceName, name), str(AttrApp, cfg.App), str(AttrDrainToken, cfg.Token)}
	if ns != "" {
		e.base = append(e.base, str(AttrNamespace, ns))
	}
	for _, kv := range e.base {
		e.baseNames = append(e.baseNames, kv.Key)
	}
	return e
}

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// value returns an AnyValue holding s from the arenas.
func (e *encoder) value(s string) *common.AnyValue {
	sv := e.strs.next()
	sv.StringValue = s
	av := e.vals.next()
	av.Value = sv
	return av
}

func (e *encoder) kv(k, v string) *common.KeyValue {
	kv := e.kvs.next()
	kv.Key, kv.Value = k, e.value(v)
	return kv
}

// group is the resource and scope of one record.
type group struct {
	res          []byte // raw res@32473 elements
	scope, scver string
}

// encode fills the request from b's frames
// ("<len> <pri>1 TIME HOST APP PROC - SD MSG"). A frame that does not scan (which the
// router never writes) is sent whole as the body, so nothing is lost silently.
func (e *encoder) encode(b *drain.Batch, now time.Time) *collogs.ExportLogsServiceRequest {
	e.res.reset()
	e.ress.reset()
	e.scs.reset()
	e.scps.reset()
	e.recs.reset()
	e.kvs.reset()
	e.vals.reset()
	e.strs.reset()
	e.rlp, e.slp, e.rp, e.kp, e.bytes = e.rlp[:0], e.slp[:0], e.rp[:0], e.kp[:0], e.bytes[:0]
	observed := uint64(now.UnixNano())
	var (
		cur             group
		rl              *logs.ResourceLogs
		sl              *logs.ScopeLogs
		slStart, rStart int
	)
	closeScope := func() {
		if sl != nil {
			sl.LogRecords = e.rp[rStart:len(e.rp):len(e.rp)]
		}
	}
	closeResource := func() {
		closeScope()
		if rl != nil {
			rl.ScopeLogs = e.slp[slStart:len(e.slp):len(e.slp)]
		}
	}
	for i := range b.Len() {
		rec := frameRecord(b.Frame(i))
		f, err := wire.Scan(rec)
		if err != nil {
			f = wire.Fields{Priority: wire.PriorityInfo, Text: rec}
		}
		r := e.recs.next()
		g := e.fill(r, &f, observed)
		if rl == nil || !bytes.Equal(g.res, cur.res) {
			closeResource()
			rl = e.resource(g.res)
			e.rlp = append(e.rlp, rl)
			slStart, sl = len(e.slp), nil
		}
		if sl == nil || g.scope != cur.scope || g.scver != cur.scver {
			closeScope()
			sl = e.scs.next()
			sl.SchemaUrl = ""
			sc := e.scps.next()
			sc.Name, sc.Version, sc.Attributes, sc.DroppedAttributesCount = g.scope, g.scver, nil, 0
			if sc.Name == "" {
				sc.Name = ScopeName
			}
			sl.Scope = sc
			e.slp = append(e.slp, sl)
			rStart = len(e.rp)
		}
		cur = g
		e.rp = append(e.rp, r)
	}
	closeResource()
	e.req.ResourceLogs = e.rlp
	return &e.req
}

// resource returns a ResourceLogs with kubeplex's attributes and the producer's
// (sd: raw res@32473 elements); kubeplex's win on a name clash.
func (e *encoder) resource(sd []byte) *logs.ResourceLogs {
	rl := e.res.next()
	rl.SchemaUrl = ""
	res := e.ress.next()
	res.DroppedAttributesCount = 0
	start := len(e.kp)
	e.kp = append(e.kp, e.base...)
	for p := range wire.SDParams(sd) {
		name := view(p.Name)
		if !contains(e.baseNames, name) {
			e.kp = append(e.kp, e.kv(name, unescape(p.Value)))
		}
	}
	res.Attributes = e.kp[start:len(e.kp):len(e.kp)]
	rl.Resource = res
	return rl
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fill sets every field of r from f and returns its group.
func (e *encoder) fill(r *logs.LogRecord, f *wire.Fields, observed uint64) group {
	var g group
	r.SeverityNumber, r.SeverityText = Severity(f.Priority)
	r.TimeUnixNano = 0
	if us, err := wire.ParseTimestamp(f.Timestamp); err == nil {
		r.TimeUnixNano = uint64(us) * 1000
	}
	r.ObservedTimeUnixNano = observed
	r.Body = e.value(text(f.Text))
	r.Flags, r.TraceId, r.SpanId, r.EventName, r.DroppedAttributesCount = 0, nil, nil, "", 0
	source, proc := view(f.AppName), view(f.ProcID)
	start := len(e.kp)
	e.kp = append(e.kp, e.kv(AttrSource, source), e.kv(AttrProcess, proc))
	if len(f.StructuredData) > 0 {
		g = e.structured(r, f.StructuredData)
	}
	r.Attributes = e.kp[start:len(e.kp):len(e.kp)]
	return g
}

// structured maps a record's STRUCTURED-DATA (docs/drains.md): otel@32473 into the
// record's own fields, log@32473 into record attributes, res@32473 into the group's
// resource, and any other element's parameters into record attributes named
// "<SD-ID>.<name>". kubeplex.source and kubeplex.process win on a clash.
func (e *encoder) structured(r *logs.LogRecord, sd []byte) group {
	var g group
	resStart, resEnd := -1, -1
	for p := range wire.SDParams(sd) {
		switch id := view(p.ID); id {
		case wire.SDIDOtel:
			v := unescape(p.Value)
			switch view(p.Name) {
			case "trace_id":
				r.TraceId = e.hexID(v, 16)
			case "span_id":
				r.SpanId = e.hexID(v, 8)
			case "flags":
				if n, err := strconv.ParseUint(v, 10, 32); err == nil {
					r.Flags = uint32(n)
				}
			case "severity_text":
				r.SeverityText = v
			case "event_name":
				r.EventName = v
			case "scope.name":
				g.scope = v
			case "scope.version":
				g.scver = v
			case "dropped_attributes_count":
				if n, err := strconv.ParseUint(v, 10, 32); err == nil {
					r.DroppedAttributesCount = uint32(n)
				}
			}
		case wire.SDIDLog:
			name := view(p.Name)
			if name == AttrSource || name == AttrProcess {
				continue
			}
			e.kp = append(e.kp, e.kv(name, unescape(p.Value)))
		case wire.SDIDResource:
			// Kept raw: the group key, and parsed once per group.
			s, end := elementSpan(sd, p.ID)
			if resStart < 0 {
				resStart = s
			}
			resEnd = end
		default:
			e.kp = append(e.kp, e.kv(id+"."+view(p.Name), unescape(p.Value)))
		}
	}
	if resStart >= 0 {
		g.res = sd[resStart:resEnd]
	}
	return g
}

// elementSpan finds the first element with SD-ID id in sd and returns its bounds.
func elementSpan(sd, id []byte) (int, int) {
	open := bytes.Index(sd, append([]byte{'['}, id...))
	if open < 0 {
		return 0, 0
	}
	// Walk to the closing ']' outside quoted values.
	inq := false
	for i := open + 1; i < len(sd); i++ {
		switch c := sd[i]; {
		case c == '\\' && inq:
			i++
		case c == '"':
			inq = !inq
		case c == ']' && !inq:
			return open, i + 1
		}
	}
	return open, len(sd)
}

// hexID decodes a trace or span id of n bytes; anything else is left out.
func (e *encoder) hexID(v string, n int) []byte {
	if len(v) != 2*n {
		return nil
	}
	start := len(e.bytes)
	e.bytes = append(e.bytes, make([]byte, n)...)
	if _, err := hex.Decode(e.bytes[start:], []byte(v)); err != nil {
		e.bytes = e.bytes[:start]
		return nil
	}
	return e.bytes[start : start+n : start+n]
}

// unescape returns an SD value without its escapes (RFC 5424 §6.3.3), as a view
// when it has none.
func unescape(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return text(v)
	}
	return strings.ToValidUTF8(string(wire.UnescapeSDValue(nil, v)), "\uFFFD")
}

// frameRecord strips the octet count ("<len> ") from a frame.
func frameRecord(frame []byte) []byte {
	if i := bytes.IndexByte(frame, ' '); i >= 0 {
		return frame[i+1:]
	}
	return frame
}

// text is the message as a string; protobuf strings must be UTF-8, which ingest
// already ensures, so the check is a formality that costs one pass.
func text(b []byte) string {
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return view(b)
}

// view reads b as a string without copying; b lives in the batch until after the send.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
