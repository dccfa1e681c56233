package ingest

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// MsgIDStateError is the MSGID of a collector's warning that it cannot keep a
// process's restart count (collector/queue.MsgIDStateError).
const MsgIDStateError = "state-error"

var platformSource = []byte(routing.PlatformSource)

// DefaultPushback is how long POST /logs may wait for room in the app's delivering
// drains' queues before it publishes anyway (dispatch.App.PublishWhenRoom).
const DefaultPushback = 2 * time.Second

// HTTP serves POST /logs (logplex-1).
type HTTP struct {
	// Pushback bounds how long an answer waits for the app's backlogged drains;
	// 0 answers at once. Set before serving.
	Pushback time.Duration

	d      *dispatch.Dispatcher
	limits Limits
	m      *metrics.Metrics
	log    *slog.Logger
	bufs   sync.Pool
}

// NewHTTP returns the logplex-1 handler.
func NewHTTP(d *dispatch.Dispatcher, limits Limits, m *metrics.Metrics, log *slog.Logger) *HTTP {
	limits.defaults()
	return &HTTP{Pushback: DefaultPushback, d: d, limits: limits, m: m, log: log}
}

type httpState struct {
	body   []byte
	b      batch
	origin []byte
}

// ServeHTTP answers 204 once the whole batch is accepted, 400 with Logplex's reason
// text when any of it is malformed (nothing is half-accepted), 401 for an unknown or
// missing token. The token alone decides the app, except for kubeplex's own
// credential, whose batches name their app (routing.PlatformAppHeader; 404 when
// the app is unknown).
func (h *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	tok, ok := wire.RequestToken(r)
	var app *dispatch.App
	var sourceFor func(f *wire.Fields) []byte
	pushback := h.Pushback
	collector := false
	switch {
	case ok && h.d.IsPlatform(tok):
		// kubeplex itself (the manager): it names the app, and its frames' sources
		// and processes stand.
		id := r.Header.Get(routing.PlatformAppHeader)
		if app, ok = h.d.App(id); !ok {
			h.m.IngestErrors.WithLabelValues("http", "unknown_app").Inc()
			http.Error(w, "Unknown app", http.StatusNotFound)
			return
		}
		sourceFor = func(f *wire.Fields) []byte {
			if len(f.AppName) == 0 {
				return platformSource
			}
			return f.AppName
		}
	case ok:
		var route *dispatch.Route
		if route, ok = h.d.ByToken(tok); ok {
			app = route.App
			sourceFor = func(f *wire.Fields) []byte { return route.SourceFor(f.AppName, f.ProcID) }
			if route.Collector() {
				// A collector is the sidecar of a running workload, with its own bounded
				// queue (L12) and one POST at a time: holding its answer would only move
				// the loss from a backlogged drain into the collector, where it costs
				// the app's history and every other drain too.
				pushback = 0
				collector = true
			}
		}
	}
	if !ok {
		h.m.IngestErrors.WithLabelValues("http", "unauthorized").Inc()
		w.Header().Set("WWW-Authenticate", `Basic realm="kubeplex"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	st, _ := h.bufs.Get().(*httpState)
	if st == nil {
		st = &httpState{}
	}
	defer h.bufs.Put(st)
	r.Body = http.MaxBytesReader(w, r.Body, int64(h.limits.MaxBody))
	b, err := wire.ReadBatch(r, h.limits.MaxBody, h.limits.MaxFrame, st.body)
	if err != nil {
		var be *wire.BatchError
		if !errors.As(err, &be) {
			be = &wire.BatchError{Reason: wire.ReasonMalformed, Err: err}
		}
		h.m.IngestErrors.WithLabelValues("http", reasonLabel(be.Reason)).Inc()
		code := http.StatusBadRequest
		if be.Reason == wire.ReasonTooLarge || be.Reason == wire.ReasonFrameTooLarge {
			code = http.StatusRequestEntityTooLarge
		}
		http.Error(w, be.Reason, code)
		return
	}
	// Keep ordinary bodies' buffers for reuse, not the rare huge one.
	if cap(b.Body) <= 1<<20 {
		st.body = b.Body[:0]
	}
	now := time.Now()
	n := 0
	st.b.app = app
	st.b.origin = nil
	if collector {
		// Only a collector's word is taken for its pod and node: it is the pod's own
		// sidecar, given both through the downward API.
		var bad bool
		st.origin, bad = originOf(st.origin[:0], r.Header)
		if bad {
			h.m.IngestErrors.WithLabelValues("http", "bad_origin").Inc()
		}
		if len(st.origin) > 0 {
			st.b.origin = st.origin
		}
	}
	for _, rec := range b.Records {
		f, err := wire.Scan(rec) // ReadBatch checked it; this is the field view
		if err != nil {
			continue
		}
		src := sourceFor(&f)
		if string(f.MsgID) == MsgIDStateError && string(src) == message.SourcePlatform {
			h.m.CollectorStateErrors.WithLabelValues(app.ID).Inc()
		}
		n += st.b.add(app, &f, src, f.ProcID, now, h.limits.MaxLine)
	}
	// A sender that waits for this answer (log-shuttle) sends its next batch only
	// once this one is in: held while none of the app's delivering drains has room,
	// a burst slows the sender instead of pushing its oldest lines out of the drain
	// queues.
	if held := st.b.flushWhenRoom(r.Context(), pushback); held > 0 {
		h.m.IngestHeld.Inc()
		h.m.IngestHeldSeconds.Add(held.Seconds())
	}
	st.b.app, st.b.origin = nil, nil
	h.m.IngestMessages.WithLabelValues("http").Add(float64(n))
	if lost := b.DropCount + b.LostCount; lost > 0 {
		h.m.IngestErrors.WithLabelValues("http", "client_reported_loss").Add(float64(lost))
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	h.m.IngestRequest.Observe(time.Since(start).Seconds())
}

// originOf reads a collector's Kubeplex-Pod and Kubeplex-Node headers into dst
// (message.AppendOrigin). A value that is not a Kubernetes name (at most 253 bytes
// of lower-case letters, digits, '-' and '.') is left out and reported as bad: the
// lines still count, only that name is unknown.
func originOf(dst []byte, hdr http.Header) ([]byte, bool) {
	pod, node := hdr.Get(wire.HeaderPod), hdr.Get(wire.HeaderNode)
	bad := false
	if pod != "" && !wire.KubeName(pod) {
		pod, bad = "", true
	}
	if node != "" && !wire.KubeName(node) {
		node, bad = "", true
	}
	if pod == "" && node == "" {
		return dst, bad
	}
	return message.AppendOrigin(dst, pod, node), bad
}

func reasonLabel(reason string) string {
	switch reason {
	case wire.ReasonMalformed:
		return "malformed"
	case wire.ReasonCount:
		return "count_mismatch"
	case wire.ReasonContentType:
		return "content_type"
	case wire.ReasonEncoding:
		return "content_encoding"
	case wire.ReasonTooLarge:
		return "too_large"
	case wire.ReasonFrameTooLarge:
		return "frame_too_large"
	}
	return "other"
}
