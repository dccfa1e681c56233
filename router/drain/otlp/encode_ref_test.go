package otlp

// The refEncoder kubeplex used before encode.go wrote protobuf by hand: it builds the
// generated message tree. Kept in the tests as the reference the hand-written
// encoding is checked against.

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/otlp/resource/v1"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/message"
)

// refArena hands out T values from chunks that are never moved, so pointers to them
// stay valid for the whole batch; reset makes them all reusable. Values come back
// with whatever the last batch left in them: callers set every field.
type refArena[T any] struct {
	chunks [][]T
	n      int
}

const refArenaChunk = 256

func (a *refArena[T]) next() *T {
	c, o := a.n/refArenaChunk, a.n%refArenaChunk
	if c == len(a.chunks) {
		a.chunks = append(a.chunks, make([]T, refArenaChunk))
	}
	a.n++
	return &a.chunks[c][o]
}

func (a *refArena[T]) reset() { a.n = 0 }

// refEncoder turns a batch into one export request. Every message of a drain belongs
// to one app: records share one ResourceLogs unless their producer gave resource
// attributes or an instrumentation scope of its own (OTLP input), and then runs of
// records with the same ones share one. Messages, attribute values and pointer
// lists come from arenas kept from batch to batch, so a steady drain allocates
// nothing per message; strings point into the batch, valid until after the send.
type refEncoder struct {
	req  collogs.ExportLogsServiceRequest
	base []*common.KeyValue // kubeplex's resource attributes
	// Names in base: a producer's resource attribute of the same name is left out.
	baseNames []string

	res   refArena[logs.ResourceLogs]
	ress  refArena[resource.Resource]
	scs   refArena[logs.ScopeLogs]
	scps  refArena[common.InstrumentationScope]
	recs  refArena[logs.LogRecord]
	kvs   refArena[common.KeyValue]
	vals  refArena[common.AnyValue]
	strs  refArena[common.AnyValue_StringValue]
	rlp   []*logs.ResourceLogs
	slp   []*logs.ScopeLogs
	rp    []*logs.LogRecord
	kp    []*common.KeyValue
	bytes []byte // trace and span ids
}

func newRefEncoder(cfg *drain.Config) *refEncoder {
	e := &refEncoder{}
	ns, name, ok := strings.Cut(cfg.App, "/")
	if !ok {
		ns, name = "", cfg.App
	}
	e.base = []*common.KeyValue{refStr(AttrServiceName, name), refStr(AttrApp, cfg.App), refStr(AttrDrainToken, cfg.Token)}
	if ns != "" {
		e.base = append(e.base, refStr(AttrNamespace, ns))
	}
	for _, kv := range e.base {
		e.baseNames = append(e.baseNames, kv.Key)
	}
	return e
}

func refStr(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

// value returns an AnyValue holding s from the arenas.
func (e *refEncoder) value(s string) *common.AnyValue {
	sv := e.strs.next()
	sv.StringValue = s
	av := e.vals.next()
	av.Value = sv
	return av
}

func (e *refEncoder) kv(k, v string) *common.KeyValue {
	kv := e.kvs.next()
	kv.Key, kv.Value = k, e.value(v)
	return kv
}

// refGroup is the resource and scope of one record.
type refGroup struct {
	res          []byte // raw res@32473 elements
	origin       []byte
	scope, scver string
}

// encode fills the request from b's frames
// ("<len> <pri>1 TIME HOST APP PROC - SD MSG"). A frame that does not scan (which the
// router never writes) is sent whole as the body, so nothing is lost silently.
func (e *refEncoder) encode(b *drain.Batch, now time.Time) *collogs.ExportLogsServiceRequest {
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
		cur             refGroup
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
		g.origin = b.Origin(i)
		if rl == nil || !bytes.Equal(g.res, cur.res) || !bytes.Equal(g.origin, cur.origin) {
			closeResource()
			rl = e.resource(g.res, g.origin)
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

// resource returns a ResourceLogs with kubeplex's attributes, the collector's pod and
// node, and the producer's (sd: raw res@32473 elements); kubeplex's and then the
// collector's win on a name clash.
func (e *refEncoder) resource(sd, origin []byte) *logs.ResourceLogs {
	rl := e.res.next()
	rl.SchemaUrl = ""
	res := e.ress.next()
	res.DroppedAttributesCount = 0
	start := len(e.kp)
	e.kp = append(e.kp, e.base...)
	names := slices.Clone(e.baseNames)
	pod, node := message.OriginNames(origin)
	if len(pod) > 0 {
		e.kp = append(e.kp, e.kv(AttrPod, string(pod)))
		names = append(names, AttrPod)
	}
	if len(node) > 0 {
		e.kp = append(e.kp, e.kv(AttrNode, string(node)))
		names = append(names, AttrNode)
	}
	for p := range wire.SDParams(sd) {
		name := view(p.Name)
		if !contains(names, name) {
			e.kp = append(e.kp, e.kv(name, refUnescape(p.Value)))
		}
	}
	res.Attributes = e.kp[start:len(e.kp):len(e.kp)]
	rl.Resource = res
	return rl
}

// fill sets every field of r from f and returns its refGroup.
func (e *refEncoder) fill(r *logs.LogRecord, f *wire.Fields, observed uint64) refGroup {
	var g refGroup
	r.SeverityNumber, r.SeverityText = Severity(f.Priority)
	r.TimeUnixNano = 0
	if us, err := wire.ParseTimestamp(f.Timestamp); err == nil {
		r.TimeUnixNano = uint64(us) * 1000
	}
	r.ObservedTimeUnixNano = observed
	r.Body = e.value(refText(f.Text))
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
// record's own fields, log@32473 into record attributes, res@32473 into the refGroup's
// resource, and any other element's parameters into record attributes named
// "<SD-ID>.<name>". kubeplex.source and kubeplex.process win on a clash.
func (e *refEncoder) structured(r *logs.LogRecord, sd []byte) refGroup {
	var g refGroup
	resStart, resEnd := -1, -1
	for p := range wire.SDParams(sd) {
		switch id := view(p.ID); id {
		case wire.SDIDOtel:
			v := refUnescape(p.Value)
			switch view(p.Name) {
			case "trace_id":
				r.TraceId = e.hexID(v, 16)
			case "span_id":
				r.SpanId = e.hexID(v, 8)
			case "flags":
				if n, err := strconv.ParseUint(v, 16, 32); err == nil {
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
			e.kp = append(e.kp, e.kv(name, refUnescape(p.Value)))
		case wire.SDIDResource:
			// Kept raw: the refGroup key, and parsed once per refGroup.
			s, end := elementSpan(sd, p.ID)
			if resStart < 0 {
				resStart = s
			}
			resEnd = end
		default:
			e.kp = append(e.kp, e.kv(id+"."+view(p.Name), refUnescape(p.Value)))
		}
	}
	if resStart >= 0 {
		g.res = sd[resStart:resEnd]
	}
	return g
}

// hexID decodes a trace or span id of n bytes; anything else is left out.
func (e *refEncoder) hexID(v string, n int) []byte {
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

// refUnescape returns an SD value without its escapes (RFC 5424 §6.3.3), as a view
// when it has none.
func refUnescape(v []byte) string {
	if bytes.IndexByte(v, '\\') < 0 {
		return refText(v)
	}
	return strings.ToValidUTF8(string(wire.UnescapeSDValue(nil, v)), "\uFFFD")
}

// refText is the message as a string; protobuf strings must be UTF-8, which ingest
// already ensures, so the check is a formality that costs one pass.
func refText(b []byte) string {
	if !utf8.Valid(b) {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return view(b)
}
