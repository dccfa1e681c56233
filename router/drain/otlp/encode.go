package otlp

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	logs "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/message"
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
	// AttrPod and AttrNode come from the collector that sent the line (its
	// Kubeplex-Pod and Kubeplex-Node headers), when it did.
	AttrPod  = "k8s.pod.name"
	AttrNode = "k8s.node.name"
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

// Field numbers of the OTLP messages written here (opentelemetry-proto,
// collector/logs/v1, logs/v1, common/v1, resource/v1).
const (
	fRequestResourceLogs = 1 // ExportLogsServiceRequest.resource_logs

	fResourceLogsResource  = 1 // ResourceLogs.resource
	fResourceLogsScopeLogs = 2 // ResourceLogs.scope_logs

	fResourceAttributes = 1 // Resource.attributes

	fScopeLogsScope   = 1 // ScopeLogs.scope
	fScopeLogsRecords = 2 // ScopeLogs.log_records

	fScopeName       = 1 // InstrumentationScope.name
	fScopeVersion    = 2 // InstrumentationScope.version
	fScopeAttributes = 3 // InstrumentationScope.attributes

	fRecordTime     = 1  // LogRecord.time_unix_nano (fixed64)
	fRecordSevNum   = 2  // LogRecord.severity_number
	fRecordSevText  = 3  // LogRecord.severity_text
	fRecordBody     = 5  // LogRecord.body (AnyValue)
	fRecordAttrs    = 6  // LogRecord.attributes
	fRecordDropped  = 7  // LogRecord.dropped_attributes_count
	fRecordFlags    = 8  // LogRecord.flags (fixed32)
	fRecordTraceID  = 9  // LogRecord.trace_id
	fRecordSpanID   = 10 // LogRecord.span_id
	fRecordObserved = 11 // LogRecord.observed_time_unix_nano (fixed64)
	fRecordEvent    = 12 // LogRecord.event_name

	fKeyValueKey   = 1 // KeyValue.key
	fKeyValueValue = 2 // KeyValue.value (AnyValue)
	fAnyString     = 1 // AnyValue.string_value
)

// Bytes kept for the length of a nested message before its size is known: a record
// (under 16 KiB: 2), a ScopeLogs or ResourceLogs (a whole batch, under 2 MiB: 3), a
// Resource or InstrumentationScope (2). A message that turns out longer or shorter
// is moved once (closeMessage).
const (
	reserveRecord = 2
	reserveGroup  = 3
	reserveSmall  = 2
)

// encoder writes a batch as an ExportLogsServiceRequest in protobuf wire format,
// appending straight into a reused buffer: no message tree is built and nothing is
// allocated per record. Every message of a drain belongs to one app: records share
// one ResourceLogs unless their producer gave resource attributes or an
// instrumentation scope of its own (OTLP input), and then runs of records with the
// same ones share one. The encoder is read-only after newEncoder, so batches in
// flight at once each encode with their own buffers.
type encoder struct {
	// base is kubeplex's resource attributes, encoded as Resource.attributes fields.
	base []byte
	// Names in base: a producer's resource attribute of the same name is left out.
	baseNames []string
}

func newEncoder(cfg *drain.Config) *encoder {
	e := &encoder{}
	ns, name, ok := strings.Cut(cfg.App, "/")
	if !ok {
		ns, name = "", cfg.App
	}
	add := func(k, v string) {
		e.base = appendKV(e.base, fResourceAttributes, k, v)
		e.baseNames = append(e.baseNames, k)
	}
	add(AttrServiceName, name)
	add(AttrApp, cfg.App)
	add(AttrDrainToken, cfg.Token)
	if ns != "" {
		add(AttrNamespace, ns)
	}
	return e
}

// group is the resource and scope of one record, as views into its frame.
type group struct {
	res          []byte // raw res@32473 element
	origin       []byte // the sending collector's pod and node (drain.Batch.Origin)
	scope, scver []byte
	scattrs      []byte // raw scope@32473 element
}

func (g *group) sameResource(o *group) bool {
	return bytes.Equal(g.res, o.res) && bytes.Equal(g.origin, o.origin)
}

func (g *group) sameScope(o *group) bool {
	return bytes.Equal(g.scope, o.scope) && bytes.Equal(g.scver, o.scver) && bytes.Equal(g.scattrs, o.scattrs)
}

// otelFields are a record's otel@32473 parameters, escapes included.
type otelFields struct {
	traceID, spanID, flags, sevText, event, dropped []byte
}

// encode appends b's frames ("<len> <pri>1 TIME HOST APP PROC - SD MSG") to dst as
// one request; tmp is scratch space for unescaped values, returned for reuse. A frame
// that does not scan (which the router never writes) is sent whole as the body, so
// nothing is lost silently.
func (e *encoder) encode(dst, tmp []byte, b *drain.Batch, now time.Time) ([]byte, []byte) {
	observed := uint64(now.UnixNano())
	var (
		cur          group
		rlPos, slPos = -1, -1
		fields       otelFields
		recordPos    int
		ts           tsCache
	)
	for i := range b.Len() {
		rec := frameRecord(b.Frame(i))
		f, err := wire.Scan(rec)
		if err != nil {
			f = wire.Fields{Priority: wire.PriorityInfo, Text: rec}
		}
		var g group
		fields = otelFields{}
		if len(f.StructuredData) > 0 {
			g = groupOf(f.StructuredData, &fields)
		}
		g.origin = b.Origin(i)
		if rlPos < 0 || !g.sameResource(&cur) {
			if slPos >= 0 {
				dst = closeMessage(dst, slPos, reserveGroup)
				dst = closeMessage(dst, rlPos, reserveGroup)
			}
			dst, rlPos = openMessage(dst, fRequestResourceLogs, reserveGroup)
			dst, tmp = e.resource(dst, tmp, g.res, g.origin)
			slPos = -1
		}
		if slPos < 0 || !g.sameScope(&cur) {
			if slPos >= 0 {
				dst = closeMessage(dst, slPos, reserveGroup)
			}
			dst, slPos = openMessage(dst, fResourceLogsScopeLogs, reserveGroup)
			dst, tmp = scope(dst, tmp, &g)
		}
		cur = g
		dst, recordPos = openMessage(dst, fScopeLogsRecords, reserveRecord)
		dst, tmp = e.record(dst, tmp, &f, &fields, &ts, observed)
		dst = closeMessage(dst, recordPos, reserveRecord)
	}
	if slPos >= 0 {
		dst = closeMessage(dst, slPos, reserveGroup)
		dst = closeMessage(dst, rlPos, reserveGroup)
	}
	return dst, tmp
}

// groupOf reads the group of a record and its otel@ fields from its STRUCTURED-DATA.
func groupOf(sd []byte, of *otelFields) group {
	var g group
	resStart, resEnd, scStart, scEnd := -1, -1, -1, -1
	for p := range wire.SDParams(sd) {
		switch view(p.ID) {
		case wire.SDIDOtel:
			switch view(p.Name) {
			case "trace_id":
				of.traceID = p.Value
			case "span_id":
				of.spanID = p.Value
			case "flags":
				of.flags = p.Value
			case "severity_text":
				of.sevText = p.Value
			case "event_name":
				of.event = p.Value
			case "scope.name":
				g.scope = p.Value
			case "scope.version":
				g.scver = p.Value
			case "dropped_attributes_count":
				of.dropped = p.Value
			}
		case wire.SDIDResource:
			// Kept raw: the group key, and read once per group.
			if resStart < 0 {
				resStart, resEnd = elementSpan(sd, p.ID)
			}
		case wire.SDIDScope:
			if scStart < 0 {
				scStart, scEnd = elementSpan(sd, p.ID)
			}
		}
	}
	if resStart >= 0 {
		g.res = sd[resStart:resEnd]
	}
	if scStart >= 0 {
		g.scattrs = sd[scStart:scEnd]
	}
	return g
}

// resource writes ResourceLogs.resource: kubeplex's attributes, the collector's pod
// and node (origin) and the producer's (sd: raw res@32473 element); kubeplex's and
// then the collector's win on a name clash.
func (e *encoder) resource(dst, tmp []byte, sd, origin []byte) ([]byte, []byte) {
	dst, pos := openMessage(dst, fResourceLogsResource, reserveSmall)
	dst = append(dst, e.base...)
	pod, node := message.OriginNames(origin)
	if len(pod) > 0 {
		dst = appendKVBytes(dst, fResourceAttributes, AttrPod, pod)
	}
	if len(node) > 0 {
		dst = appendKVBytes(dst, fResourceAttributes, AttrNode, node)
	}
	for p := range wire.SDParams(sd) {
		name := view(p.Name)
		if !contains(e.baseNames, name) && (len(pod) == 0 || name != AttrPod) && (len(node) == 0 || name != AttrNode) {
			var v []byte
			v, tmp = unescape(tmp, p.Value)
			dst = appendKVBytes(dst, fResourceAttributes, name, v)
		}
	}
	return closeMessage(dst, pos, reserveSmall), tmp
}

// scope writes ScopeLogs.scope: the producer's name, version and attributes (raw
// scope@32473 element), or kubeplex's name.
func scope(dst, tmp []byte, g *group) ([]byte, []byte) {
	dst, pos := openMessage(dst, fScopeLogsScope, reserveSmall)
	if len(g.scope) == 0 {
		dst = appendString(dst, fScopeName, ScopeName)
	} else {
		dst, tmp = appendSDValue(dst, tmp, fScopeName, g.scope)
	}
	if len(g.scver) > 0 {
		dst, tmp = appendSDValue(dst, tmp, fScopeVersion, g.scver)
	}
	for p := range wire.SDParams(g.scattrs) {
		var v []byte
		v, tmp = unescape(tmp, p.Value)
		dst = appendKVBytes(dst, fScopeAttributes, view(p.Name), v)
	}
	return closeMessage(dst, pos, reserveSmall), tmp
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// record writes the fields of one LogRecord (docs/drains.md): the syslog fields, then
// what STRUCTURED-DATA adds. otel@32473 gives the record's own fields, log@32473 its
// attributes, any other element's parameters become attributes named
// "<SD-ID>.<name>"; kubeplex.source and kubeplex.process win on a clash. Fields at
// their zero value are left out, as protobuf does.
func (e *encoder) record(dst, tmp []byte, f *wire.Fields, of *otelFields, ts *tsCache, observed uint64) ([]byte, []byte) {
	if us, ok := ts.parse(f.Timestamp); ok && us != 0 {
		dst = protowire.AppendTag(dst, fRecordTime, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, uint64(us)*1000)
	}
	num, sevText := Severity(f.Priority)
	dst = protowire.AppendTag(dst, fRecordSevNum, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(num))
	if of.sevText != nil {
		dst, tmp = appendSDValue(dst, tmp, fRecordSevText, of.sevText)
	} else {
		dst = appendString(dst, fRecordSevText, sevText)
	}
	// body: an AnyValue holding the text.
	body := f.Text
	if !utf8.Valid(body) {
		tmp = append(tmp[:0], strings.ToValidUTF8(view(body), "\uFFFD")...)
		body = tmp
	}
	dst = protowire.AppendTag(dst, fRecordBody, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(sizeBytesField(fAnyString, len(body))))
	dst = appendBytesField(dst, fAnyString, body)
	dst = appendKVBytes(dst, fRecordAttrs, AttrSource, f.AppName)
	dst = appendKVBytes(dst, fRecordAttrs, AttrProcess, f.ProcID)
	for p := range wire.SDParams(f.StructuredData) {
		id := view(p.ID)
		switch id {
		case wire.SDIDOtel, wire.SDIDResource, wire.SDIDScope:
			continue
		case wire.SDIDLog:
			if name := view(p.Name); name != AttrSource && name != AttrProcess {
				var v []byte
				v, tmp = unescape(tmp, p.Value)
				dst = appendKVBytes(dst, fRecordAttrs, name, v)
			}
		default:
			var v []byte
			v, tmp = unescape(tmp, p.Value)
			dst = protowire.AppendTag(dst, fRecordAttrs, protowire.BytesType)
			keyLen := len(p.ID) + 1 + len(p.Name)
			dst = protowire.AppendVarint(dst, uint64(sizeKV(keyLen, len(v))))
			dst = protowire.AppendTag(dst, fKeyValueKey, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(keyLen))
			dst = append(dst, p.ID...)
			dst = append(dst, '.')
			dst = append(dst, p.Name...)
			dst = appendAnyString(dst, v)
		}
	}
	if n, ok := parseUint32(of.dropped, 10); ok && n != 0 {
		dst = protowire.AppendTag(dst, fRecordDropped, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(n))
	}
	if n, ok := parseUint32(of.flags, 16); ok && n != 0 {
		dst = protowire.AppendTag(dst, fRecordFlags, protowire.Fixed32Type)
		dst = protowire.AppendFixed32(dst, n)
	}
	dst = appendHexID(dst, fRecordTraceID, of.traceID, 16)
	dst = appendHexID(dst, fRecordSpanID, of.spanID, 8)
	dst = protowire.AppendTag(dst, fRecordObserved, protowire.Fixed64Type)
	dst = protowire.AppendFixed64(dst, observed)
	if len(of.event) > 0 {
		dst, tmp = appendSDValue(dst, tmp, fRecordEvent, of.event)
	}
	return dst, tmp
}

// parseUint32 reads a number in base (trace flags are hex, as OTLP input writes them).
// tsCache parses RFC 5424 timestamps, remembering the last one's whole second: the
// records of a batch mostly share it, and then only the fraction is read.
type tsCache struct {
	sec, zone []byte // "YYYY-MM-DDTHH:MM:SS" and the offset of the last timestamp
	base      int64  // its whole second, µs
}

func (c *tsCache) parse(ts []byte) (int64, bool) {
	const secLen = len("2006-01-02T15:04:05")
	if len(ts) <= secLen+1 || ts[secLen] != '.' {
		us, err := wire.ParseTimestamp(ts)
		return us, err == nil
	}
	j, frac := secLen+1, int64(0)
	for j < len(ts) && j < secLen+7 && ts[j] >= '0' && ts[j] <= '9' {
		frac = frac*10 + int64(ts[j]-'0')
		j++
	}
	digits := j - secLen - 1
	for range 6 - digits {
		frac *= 10
	}
	if j < len(ts) && ts[j] >= '0' && ts[j] <= '9' || digits == 0 {
		// More than 6 digits (or none): the full parser decides.
		us, err := wire.ParseTimestamp(ts)
		return us, err == nil
	}
	if c.sec != nil && bytes.Equal(ts[:secLen], c.sec) && bytes.Equal(ts[j:], c.zone) {
		return c.base + frac, true
	}
	us, err := wire.ParseTimestamp(ts)
	if err != nil {
		return 0, false
	}
	c.sec, c.zone, c.base = ts[:secLen], ts[j:], us-frac
	return us, true
}

func parseUint32(v []byte, base int) (uint32, bool) {
	if len(v) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(view(v), base, 32)
	return uint32(n), err == nil
}

// appendHexID writes a trace or span id of n bytes given as hex; anything else is
// left out.
func appendHexID(dst []byte, field protowire.Number, v []byte, n int) []byte {
	var id [16]byte
	if len(v) != 2*n {
		return dst
	}
	if _, err := hex.Decode(id[:n], v); err != nil {
		return dst
	}
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	return protowire.AppendBytes(dst, id[:n])
}

// openMessage starts a length-delimited field, keeping reserve bytes for its length,
// and returns where the length goes.
func openMessage(dst []byte, field protowire.Number, reserve int) ([]byte, int) {
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	pos := len(dst)
	for range reserve {
		dst = append(dst, 0)
	}
	return dst, pos
}

// closeMessage writes the length of the field opened at pos, moving its contents
// when the length takes more or fewer than the reserved bytes.
func closeMessage(dst []byte, pos, reserve int) []byte {
	n := len(dst) - pos - reserve
	sz := protowire.SizeVarint(uint64(n))
	if sz != reserve {
		if sz > reserve {
			dst = append(dst, make([]byte, sz-reserve)...)
		}
		copy(dst[pos+sz:], dst[pos+reserve:pos+reserve+n])
		dst = dst[:pos+sz+n]
	}
	protowire.AppendVarint(dst[pos:pos], uint64(n))
	return dst
}

func sizeBytesField(field protowire.Number, n int) int {
	return protowire.SizeTag(field) + protowire.SizeBytes(n)
}

// sizeKV is the size of a KeyValue with a string AnyValue. A string_value is always
// written, even empty (it is a oneof: present means set).
func sizeKV(keyLen, valLen int) int {
	s := sizeBytesField(fKeyValueValue, sizeBytesField(fAnyString, valLen))
	if keyLen > 0 {
		s += sizeBytesField(fKeyValueKey, keyLen)
	}
	return s
}

func appendBytesField(dst []byte, field protowire.Number, v []byte) []byte {
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func appendString(dst []byte, field protowire.Number, v string) []byte {
	if v == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	return protowire.AppendString(dst, v)
}

// appendSDValue writes an SD parameter value (escapes included) as a string field.
func appendSDValue(dst, tmp []byte, field protowire.Number, v []byte) ([]byte, []byte) {
	u, tmp := unescape(tmp, v)
	if len(u) == 0 {
		return dst, tmp
	}
	return appendBytesField(dst, field, u), tmp
}

// appendAnyString writes KeyValue.value as an AnyValue holding v.
func appendAnyString(dst, v []byte) []byte {
	dst = protowire.AppendTag(dst, fKeyValueValue, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(sizeBytesField(fAnyString, len(v))))
	return appendBytesField(dst, fAnyString, v)
}

// appendKVBytes writes a KeyValue field with a string value. v must be valid UTF-8.
func appendKVBytes(dst []byte, field protowire.Number, k string, v []byte) []byte {
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(sizeKV(len(k), len(v))))
	if k != "" {
		dst = protowire.AppendTag(dst, fKeyValueKey, protowire.BytesType)
		dst = protowire.AppendString(dst, k)
	}
	return appendAnyString(dst, v)
}

func appendKV(dst []byte, field protowire.Number, k, v string) []byte {
	return appendKVBytes(dst, field, k, []byte(v))
}

// elementSpan returns the bounds in sd of the element whose SD-ID is id, a view
// into sd as SDParams yields it.
func elementSpan(sd, id []byte) (int, int) {
	open := cap(sd) - cap(id) - 1 // id is sd[open+1:...]
	// Walk to the closing ']' outside quoted values.
	inq := false
	for j := open + 1 + len(id); j < len(sd); j++ {
		switch c := sd[j]; {
		case c == '\\' && inq:
			j++
		case c == '"':
			inq = !inq
		case c == ']' && !inq:
			return open, j + 1
		}
	}
	return open, len(sd)
}

// unescape returns an SD value without its escapes (RFC 5424 §6.3.3) and as valid
// UTF-8: v itself when it needs neither, else a copy in tmp (returned for reuse).
func unescape(tmp, v []byte) ([]byte, []byte) {
	if bytes.IndexByte(v, '\\') < 0 {
		if utf8.Valid(v) {
			return v, tmp
		}
		tmp = append(tmp[:0], strings.ToValidUTF8(view(v), "\uFFFD")...)
		return tmp, tmp
	}
	tmp = wire.UnescapeSDValue(tmp[:0], v)
	if !utf8.Valid(tmp) {
		tmp = append(tmp[:0], strings.ToValidUTF8(string(tmp), "\uFFFD")...)
	}
	return tmp, tmp
}

// frameRecord strips the octet count ("<len> ") from a frame.
func frameRecord(frame []byte) []byte {
	if i := bytes.IndexByte(frame, ' '); i >= 0 {
		return frame[i+1:]
	}
	return frame
}

// view reads b as a string without copying, for comparisons and keys that are
// copied before b changes.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
