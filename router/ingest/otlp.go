package ingest

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/kubeplex/kubeplex/internal/otlpin"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// OTLPProcess is the process of OTLP records whose resource names no service.
const OTLPProcess = "otlp"

// OTLP serves POST /v1/logs: OpenTelemetry logs over OTLP/HTTP from producers that
// hold an app token (add-on providers, an app's own OpenTelemetry Collector). The
// token is the same credential /logs takes, sent as OTLP exporters send headers:
// `Authorization: Bearer t.<token>` or Basic auth with the token as password.
type OTLP struct {
	d      *dispatch.Dispatcher
	limits Limits
	m      *metrics.Metrics
	log    *slog.Logger
}

// NewOTLP returns the OTLP/HTTP logs handler.
func NewOTLP(d *dispatch.Dispatcher, limits Limits, m *metrics.Metrics, log *slog.Logger) *OTLP {
	limits.defaults()
	return &OTLP{d: d, limits: limits, m: m, log: log}
}

// ServeHTTP answers as OTLP/HTTP asks (internal/otlpin.Handle), after the token:
// 401 for an unknown or missing one, and for kubeplex's own credential, which speaks
// logplex-1 only. Each record becomes a message of the app the token names, under the
// token's source (an app token writes source app only) and the process named by the
// resource's service.name (sanitized as PROCID; "otlp" when there is none). A record
// whose body is over --max-frame is refused as a partial success, as /logs refuses a
// frame over it; longer texts are split at --max-line as any line.
func (h *OTLP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	enc := otlpin.ContentProtobuf
	if ct := r.Header.Get("Content-Type"); len(ct) >= len(otlpin.ContentJSON) && ct[:len(otlpin.ContentJSON)] == otlpin.ContentJSON {
		enc = otlpin.ContentJSON
	}
	var route *dispatch.Route
	tok, ok := wire.RequestToken(r)
	if ok && !h.d.IsPlatform(tok) {
		route, ok = h.d.ByToken(tok)
	} else {
		ok = false
	}
	if !ok {
		h.m.IngestErrors.WithLabelValues("otlp", "unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="kubeplex"`)
		otlpin.WriteError(w, enc, http.StatusUnauthorized, "an app token is required: Authorization: Bearer t.<token>")
		return
	}
	var b batch
	var procBuf []byte
	n := 0
	res, err := otlpin.Handle(w, r, otlpin.Limits{MaxBody: h.limits.MaxBody, MaxText: h.limits.MaxFrame}, time.Now(),
		func(rec *otlpin.Record) bool {
			procBuf = appendProc(procBuf[:0], rec.Service)
			n += b.addRecord(route.App, rec, route.Source, procBuf, h.limits.MaxLine)
			return true
		})
	b.flush()
	if err != nil {
		var re *otlpin.RequestError
		reason := "malformed"
		if errors.As(err, &re) {
			switch re.Status {
			case http.StatusRequestEntityTooLarge:
				reason = "too_large"
			case http.StatusUnsupportedMediaType:
				reason = "content_type"
			}
		}
		h.m.IngestErrors.WithLabelValues("otlp", reason).Inc()
		return
	}
	h.m.IngestMessages.WithLabelValues("otlp").Add(float64(n))
	if res.Rejected > 0 {
		h.m.IngestErrors.WithLabelValues("otlp", "frame_too_large").Add(float64(res.Rejected))
	}
}

// appendProc makes a service name a PROCID: printable US-ASCII, at most 128 bytes.
func appendProc(dst []byte, service string) []byte {
	if service == "" {
		return append(dst, OTLPProcess...)
	}
	for i := 0; i < len(service) && len(dst) < 128; i++ {
		c := service[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// addRecord is add for an OTLP record, whose time and SD come decoded.
func (b *batch) addRecord(app *dispatch.App, r *otlpin.Record, source, proc []byte, maxLine int) int {
	if b.app != app {
		b.flush()
		b.app = app
	}
	m := message.Msg{Priority: r.Priority, Time: r.Time.UnixMicro(), Source: source, ProcID: proc, Attrs: r.SD}
	text := r.Text
	if !utf8.Valid(text) {
		text = bytes.ToValidUTF8(text, []byte("\uFFFD")) // as add does, for strict receivers
	}
	n := 0
	message.SplitText(text, maxLine, func(piece []byte) {
		m.Text = piece
		b.buf = message.Append(b.buf, &m)
		b.ends = append(b.ends, len(b.buf))
		n++
	})
	return n
}
