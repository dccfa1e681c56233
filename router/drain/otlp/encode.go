package otlp

import (
	"bytes"
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
	// ScopeName is the instrumentation scope of every record.
	ScopeName = "kubeplex.io/router"
)

// recordAttrs is how many attributes each record carries.
const recordAttrs = 2

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

// encoder turns a batch into one export request. Every message of a drain belongs
// to one app, so a request has one ResourceLogs with one ScopeLogs. The records and
// their values live in slices kept from batch to batch, so a steady drain allocates
// nothing per message; the strings point into the batch and are valid until it is
// reset, which is after the request was sent.
type encoder struct {
	req   collogs.ExportLogsServiceRequest
	rl    logs.ResourceLogs
	sl    logs.ScopeLogs
	rlp   [1]*logs.ResourceLogs
	slp   [1]*logs.ScopeLogs
	recs  []logs.LogRecord
	rptrs []*logs.LogRecord
	// Per record: the body, then recordAttrs attributes.
	vals  []common.AnyValue
	strs  []common.AnyValue_StringValue
	kvs   []common.KeyValue
	kptrs []*common.KeyValue
}

func newEncoder(cfg *drain.Config) *encoder {
	e := &encoder{}
	ns, name, ok := strings.Cut(cfg.App, "/")
	if !ok {
		ns, name = "", cfg.App
	}
	res := []*common.KeyValue{str(AttrServiceName, name), str(AttrApp, cfg.App), str(AttrDrainToken, cfg.Token)}
	if ns != "" {
		res = append(res, str(AttrNamespace, ns))
	}
	e.rl.Resource = &resource.Resource{Attributes: res}
	e.sl.Scope = &common.InstrumentationScope{Name: ScopeName}
	e.slp[0] = &e.sl
	e.rl.ScopeLogs = e.slp[:]
	e.rlp[0] = &e.rl
	e.req.ResourceLogs = e.rlp[:]
	return e
}

func str(k, v string) *common.KeyValue {
	return &common.KeyValue{Key: k, Value: &common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: v}}}
}

func (e *encoder) grow(n int) {
	if len(e.recs) >= n {
		return
	}
	// New backing arrays: the old ones' addresses are in rptrs and kptrs, which are
	// rebuilt below, so nothing points into them afterwards.
	e.recs = make([]logs.LogRecord, n)
	e.rptrs = make([]*logs.LogRecord, n)
	e.vals = make([]common.AnyValue, n*(1+recordAttrs))
	e.strs = make([]common.AnyValue_StringValue, n*(1+recordAttrs))
	e.kvs = make([]common.KeyValue, n*recordAttrs)
	e.kptrs = make([]*common.KeyValue, n*recordAttrs)
	for i := range e.vals {
		e.vals[i].Value = &e.strs[i]
	}
	for i := range n {
		r := &e.recs[i]
		e.rptrs[i] = r
		r.Body = &e.vals[i*(1+recordAttrs)]
		for j := range recordAttrs {
			kv := &e.kvs[i*recordAttrs+j]
			kv.Value = &e.vals[i*(1+recordAttrs)+1+j]
			e.kptrs[i*recordAttrs+j] = kv
		}
		r.Attributes = e.kptrs[i*recordAttrs : (i+1)*recordAttrs : (i+1)*recordAttrs]
	}
	for i := range n {
		e.kvs[i*recordAttrs].Key = AttrSource
		e.kvs[i*recordAttrs+1].Key = AttrProcess
	}
}

// encode fills the request from b's frames ("<len> <pri>1 TIME HOST APP PROC - - MSG").
// A frame that does not scan (which the router never writes) is sent whole as the
// body, so nothing is lost silently.
func (e *encoder) encode(b *drain.Batch, now time.Time) *collogs.ExportLogsServiceRequest {
	n := b.Len()
	e.grow(n)
	observed := uint64(now.UnixNano())
	for i := range n {
		r := &e.recs[i]
		base := i * (1 + recordAttrs)
		rec := frameRecord(b.Frame(i))
		f, err := wire.Scan(rec)
		if err != nil {
			f = wire.Fields{Priority: wire.PriorityInfo, Text: rec}
		}
		r.SeverityNumber, r.SeverityText = Severity(f.Priority)
		r.TimeUnixNano = 0
		if us, err := wire.ParseTimestamp(f.Timestamp); err == nil {
			r.TimeUnixNano = uint64(us) * 1000
		}
		r.ObservedTimeUnixNano = observed
		e.strs[base].StringValue = text(f.Text)
		e.strs[base+1].StringValue = view(f.AppName)
		e.strs[base+2].StringValue = view(f.ProcID)
	}
	e.sl.LogRecords = e.rptrs[:n]
	return &e.req
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
