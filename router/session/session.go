// Package session serves log sessions on the router: GET /sessions/<id>, where the
// id is a signed claim the manager issued for a LogSession (internal/session). Any
// replica verifies it statelessly, gathers the app's history from its own ring and
// from every other replica (PeerPath), merges it by timestamp, and then, for a tail
// session, streams new lines from all of them. A slow reader has a bounded buffer and
// is told what it lost (L11); ingest and drains never wait for a session.
package session

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
)

// Path is the route of sessions; metrics and logs name it, never a session's URL.
const Path = "/sessions/"

// MaxLines is the most history a session gets.
const MaxLines = session.MaxLines

// Options are the router's session flags.
type Options struct {
	// Peers are static base URLs of the other replicas (process tests, standalone).
	Peers []string
	// PeerService is "namespace/name" of the router Service whose EndpointSlices list
	// the replicas; PeerPort names its HTTP port.
	PeerService string
	PeerPort    string
	// BufferLines bounds each tail session's buffer.
	BufferLines int
	// PeerTimeout bounds the wait for another replica's history.
	PeerTimeout time.Duration
	// ReissueEvery is how often an event-stream session gets a fresh URL.
	ReissueEvery time.Duration
}

// BindFlags registers the session flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.Func("peers", "comma-separated base URLs of the other router replicas (instead of --peer-service)", func(s string) error {
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.Peers = append(o.Peers, p)
			}
		}
		return nil
	})
	fs.StringVar(&o.PeerService, "peer-service", "", "router Service as NAMESPACE/NAME whose EndpointSlices list the other replicas")
	fs.StringVar(&o.PeerPort, "peer-port-name", "http", "name of the router Service port that serves sessions")
	fs.IntVar(&o.BufferLines, "session-buffer", DefaultBufferLines, "lines buffered per tail session before new ones are dropped (L11)")
	fs.DurationVar(&o.PeerTimeout, "peer-timeout", 5*time.Second, "how long a session waits for another replica's history")
}

// Apps finds an app's live state by id ("namespace/name").
type Apps interface {
	App(id string) (*dispatch.App, bool)
}

// Peers lists the base URLs of the other replicas.
type Peers interface {
	Peers() []string
}

// StaticPeers is a fixed list.
type StaticPeers []string

// Peers returns the list.
func (s StaticPeers) Peers() []string { return s }

// Handler serves sessions and peer calls.
type Handler struct {
	apps    Apps
	peers   Peers
	opts    Options
	log     *slog.Logger
	client  *http.Client
	metrics *metrics
	web     http.Handler

	keysMu sync.RWMutex
	keySet []routing.SessionKey

	nonces replayGuard // of peer calls this replica accepted
	feeds  feeds       // of the apps tail sessions follow here
}

// New returns a handler. web serves the viewer page for text/html (nil: 406).
func New(apps Apps, peers Peers, opts Options, web http.Handler, reg prometheus.Registerer, log *slog.Logger) *Handler {
	if opts.PeerTimeout <= 0 {
		opts.PeerTimeout = 5 * time.Second
	}
	if opts.ReissueEvery <= 0 {
		opts.ReissueEvery = 30 * time.Second
	}
	if peers == nil {
		peers = StaticPeers(nil)
	}
	return &Handler{
		apps: apps, peers: peers, opts: opts, log: log, web: web, metrics: newMetrics(reg),
		// No overall timeout: tail streams last as long as the client listens.
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, ResponseHeaderTimeout: opts.PeerTimeout,
		}},
	}
}

// SetKeys installs the routing table's session keys (newest first).
func (h *Handler) SetKeys(keys []routing.SessionKey) {
	h.keysMu.Lock()
	h.keySet = slices.Clone(keys)
	h.keysMu.Unlock()
}

func (h *Handler) keys() []routing.SessionKey {
	h.keysMu.RLock()
	defer h.keysMu.RUnlock()
	return h.keySet
}

// Mount adds the session and peer routes to mx.
func (h *Handler) Mount(mx *http.ServeMux) {
	mx.Handle(Path, h)
	mx.HandleFunc("POST "+PeerPath, h.servePeer)
}

// Intercept routes /sessions/ requests to h before mx sees them: ServeMux would
// answer a path with "..", "//" or an encoded slash with a redirect to a cleaned
// path, and a session path must instead be refused as it is.
func (h *Handler) Intercept(mx http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sessions") || strings.HasPrefix(r.URL.RawPath, "/sessions") {
			h.ServeHTTP(w, r)
			return
		}
		mx.ServeHTTP(w, r)
	})
}

// refuse answers a one-line reason. Forged and malformed ids get 404 (nothing is
// there), expired ones 403, as the contract says.
func (h *Handler) refuse(w http.ResponseWriter, code int, reason, label string) {
	h.metrics.refused.WithLabelValues(label).Inc()
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, code)
}

// ServeHTTP serves GET /sessions/<id>.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.refuse(w, http.StatusMethodNotAllowed, "method not allowed", "method")
		return
	}
	// The raw path, not the decoded one: an id never contains an escape, so any
	// percent sign (%2e%2e, %252f) is a trick and refused here.
	raw := r.URL.EscapedPath()
	id, ok := strings.CutPrefix(raw, Path)
	if !ok || id == "" || strings.ContainsAny(id, "/%") || strings.Contains(id, "..") {
		h.refuse(w, http.StatusNotFound, "session not found", "malformed")
		return
	}
	claims, err := session.Verify(id, h.keys(), time.Now())
	if err != nil {
		code, label := http.StatusNotFound, "invalid"
		if errors.Is(err, session.ErrExpired) {
			code, label = http.StatusForbidden, "expired"
		}
		h.refuse(w, code, err.Error(), label)
		return
	}
	app, ok := h.apps.App(claims.AppID())
	if !ok {
		h.refuse(w, http.StatusNotFound, "app not found", "app")
		return
	}
	f, err := negotiate(r)
	if err != nil {
		h.refuse(w, http.StatusNotAcceptable, err.Error(), "format")
		return
	}
	if f == formatHTML {
		if h.web == nil {
			h.refuse(w, http.StatusNotAcceptable,
				"the web viewer is not built into this router; ask for text/plain, application/x-ndjson or text/event-stream", "format")
			return
		}
		h.metrics.opened.WithLabelValues(f.name()).Inc()
		h.web.ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", f.contentType())
		return
	}
	since := fromClaims(claims)
	if f == formatSSE {
		// EventSource sends the last id it saw when it reconnects on its own; a
		// viewer that opens a fresh URL passes it as ?cursor=. Either only says where
		// to resume within what the signed claims allow.
		last := r.Header.Get("Last-Event-ID")
		if last == "" {
			last = r.URL.Query().Get("cursor")
		}
		if c, ok := parseCursor(last); ok && c.at >= since.at {
			since = c
		}
	}
	keepOpen(w)
	h.metrics.opened.WithLabelValues(f.name()).Inc()
	h.metrics.active.Inc()
	defer h.metrics.active.Dec()
	h.stream(r.Context(), w, r, app, claims, since, f)
}

// stream sends history, then the tail.
func (h *Handler) stream(ctx context.Context, w http.ResponseWriter, r *http.Request, app *dispatch.App,
	c *session.Claims, since cursor, f format) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	filter := Filter{Source: c.Source, Dyno: c.Dyno}
	var tail *sink
	if c.Tail {
		tail = newFedSink(filter, h.opts.BufferLines, app.History.ID(), f)
		tail.dropCounter = h.metrics.dropped
	}
	sinceAt, sinceSeen, sincePos := since.claims()
	req := peerRequest{App: c.AppID(), Lines: c.Lines, Tail: c.Tail, Source: c.Source, Dyno: c.Dyno,
		Since: sinceAt, Seen: sinceSeen, Pos: sincePos, Seq: true}
	var streams []*peerStream
	if c.Lines > 0 || c.Tail {
		for _, p := range h.peers.Peers() {
			streams = append(streams, h.askPeer(ctx, p, req, tail))
		}
	}
	local, unsubscribe := snapshot(app, c.Lines, filter, &since, tail, h.feeds.join)
	defer unsubscribe()

	parts := []part{local}
	timeout := time.NewTimer(h.opts.PeerTimeout)
	defer timeout.Stop()
	for _, ps := range streams {
		select {
		case hist := <-ps.hist:
			parts = append(parts, hist)
		case <-timeout.C:
			h.metrics.peerErrors.Inc()
			h.log.Warn("session peer history timed out")
		case <-ctx.Done():
			return
		}
	}
	hist := merge(parts, c.Lines)
	// Routers older than numbered lines refuse a URL whose claims carry positions
	// (unknown claims are refused), so during a rolling upgrade a re-issued URL
	// carries them only when every replica answered with numbered lines.
	withPos := numbered(parts, len(streams))

	w.Header().Set("Content-Type", f.contentType())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if f == formatSSE {
		w.Header().Set("X-Accel-Buffering", "no") // nginx ingress: do not buffer the stream
	}
	fl, _ := w.(http.Flusher)
	// The stream goes on from since: lines at its microsecond add to what it has
	// seen, and replicas it does not reach this time keep their positions.
	enc := &encoder{f: f, cur: since.clone()}
	if f == formatSSE {
		if err := h.reissue(enc, r, c, enc.cur, withPos); err != nil {
			h.log.Warn("session re-issue failed", "err", err)
		}
	}
	for _, l := range hist {
		enc.record(l.rec, l.hid, l.seq)
	}
	h.metrics.lines.Add(float64(len(hist)))
	if !c.Tail {
		enc.end()
		_, _ = w.Write(enc.buf)
		return
	}
	enc.tail(parts, time.Now().UnixMicro())
	if _, err := w.Write(enc.buf); err != nil {
		return
	}
	if fl != nil {
		fl.Flush()
	}
	// A fresh URL at least twice per connect window, so the newest one a viewer holds
	// is always valid when its stream drops (a short --session-ttl included).
	every := h.opts.ReissueEvery
	if ttl := time.Duration(c.Expires-c.IssuedAt) * time.Second; ttl/2 < every {
		every = max(ttl/2, 500*time.Millisecond)
	}
	reissue := time.NewTicker(every)
	defer reissue.Stop()
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	lastWrite := time.Now()
	out := &output{enc: enc}
	for {
		out.reset()
		select {
		case <-ctx.Done():
			return
		case <-reissue.C:
			if f == formatSSE {
				if err := h.reissue(enc, r, c, enc.cur, withPos); err != nil {
					h.log.Warn("session re-issue failed", "err", err)
				}
			}
		case <-tail.notify:
			if !tail.coalesce(ctx, lastWrite, gap) {
				return
			}
			tail.takeEntries(out.add)
		}
		parts := out.done()
		if len(parts) == 0 {
			continue
		}
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return
			}
		}
		if fl != nil {
			fl.Flush()
		}
		lastWrite = time.Now()
		h.metrics.lines.Add(float64(out.n))
	}
}

// output is what one write of a tail stream sends, in order: runs of lines a feed
// formatted, written straight from the sink's buffer (text and JSON lines need
// nothing around them, so a busy tail's write copies nothing), and what the encoder
// made of the rest. The parts are valid until the sink's next take.
type output struct {
	enc      *encoder
	parts    [][]byte
	run      []byte
	encStart int // start of the encoder's bytes not yet in parts (-1: none)
	n        int // lines
}

func (o *output) reset() {
	o.enc.buf, o.parts, o.run, o.encStart, o.n = o.enc.buf[:0], o.parts[:0], nil, -1, 0
}

func (o *output) add(e entry) {
	if e.b != nil {
		o.n++
	}
	if !e.raw && e.b != nil && o.enc.f != formatSSE {
		o.endEnc()
		if len(o.run) > 0 && cap(o.run) >= len(o.run)+len(e.b) && &o.run[:len(o.run)+1][len(o.run)] == &e.b[0] {
			o.run = o.run[:len(o.run)+len(e.b)] // the next line of the same buffer
			return
		}
		o.endRun()
		o.run = e.b
		return
	}
	o.endRun()
	if o.encStart < 0 {
		o.encStart = len(o.enc.buf)
	}
	o.enc.line(e)
}

func (o *output) endRun() {
	if len(o.run) > 0 {
		o.parts = append(o.parts, o.run)
	}
	o.run = nil
}

// endEnc closes the encoder's part; bytes appended later may move the encoder's
// buffer, and the slice taken here keeps what it holds.
func (o *output) endEnc() {
	if o.encStart >= 0 && len(o.enc.buf) > o.encStart {
		o.parts = append(o.parts, o.enc.buf[o.encStart:])
	}
	o.encStart = -1
}

// done returns the parts; a re-issued URL written before the tail's lines (enc.buf
// written with no tail entry) is a part too.
func (o *output) done() [][]byte {
	o.endRun()
	if o.encStart < 0 && len(o.enc.buf) > 0 && len(o.parts) == 0 {
		o.encStart = 0
	}
	o.endEnc()
	return o.parts
}

// keepOpen lifts the server's read and write deadlines for this response: a tail
// lasts as long as the client listens, and the server's ReadTimeout would otherwise
// end it (its background read fails at the deadline and cancels the request).
func keepOpen(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})  // unsupported writers have no deadline to lift
	_ = rc.SetWriteDeadline(time.Time{}) // same
}

// reissue writes an SSE "session" event with a fresh id for the same claims that
// continues after cursor, so a viewer whose stream drops can reconnect after the
// original connect-by deadline; with withPos the id carries the cursor's positions.
func (h *Handler) reissue(enc *encoder, r *http.Request, c *session.Claims, cur cursor, withPos bool) error {
	at, seen, pos := cur.claims()
	if !withPos {
		pos = nil // the id still resumes by time; the cursor a client passes keeps the positions
	}
	next := session.Claims{Namespace: c.Namespace, App: c.App, Lines: c.Lines, Tail: c.Tail,
		Source: c.Source, Dyno: c.Dyno, Since: at, Seen: seen, Pos: pos}
	ttl := time.Duration(c.Expires-c.IssuedAt) * time.Second
	now := time.Now()
	id, err := session.Sign(next, h.keys(), now, max(ttl, time.Second))
	if err != nil {
		return fmt.Errorf("re-issue session: %w", err)
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	enc.session(scheme+"://"+r.Host+Path+id, session.Expiry(now, max(ttl, time.Second)))
	return nil
}

// numbered reports whether all peers (n of them) answered and every replica's part
// is numbered (a history ID: a router that knows positions).
func numbered(parts []part, peers int) bool {
	if len(parts) != peers+1 {
		return false
	}
	for _, p := range parts {
		if p.hid == 0 {
			return false
		}
	}
	return true
}

// part is one replica's history for a session: records oldest first (in the order
// that replica stored them) with their sequence numbers in history hid (hid 0: a
// replica that does not number its lines), and end, the newest line that history
// held when the session subscribed to it (0: none, or a replica that does not say):
// every line after it comes by the tail.
type part struct {
	hid  uint32
	recs [][]byte
	seqs []uint64
	end  uint64
}

// joinFunc subscribes tail to what app's history appends after the snapshot fn
// takes, in one step (feeds.join).
type joinFunc func(app *dispatch.App, fn func(seq uint64, rec []byte) bool, tail *sink) (last uint64, leave func())

// subscribeDirect is a joinFunc for a sink of its own (a peer call's).
func subscribeDirect(app *dispatch.App, fn func(seq uint64, rec []byte) bool, tail *sink) (uint64, func()) {
	return app.History.Subscribe(fn, tail)
}

// snapshot copies the newest lines records of app's history that pass f and come
// after since and, when tail is not nil, subscribes it with join to what comes
// after, atomically. If since has a position in this history, "after" is exactly the
// lines stored after that one; otherwise it is by time (Filter.Since and Seen).
func snapshot(app *dispatch.App, lines int, f Filter, since *cursor, tail *sink, join joinFunc) (hist part, cancel func()) {
	hid := app.History.ID()
	hist.hid = hid
	if lines <= 0 && tail == nil {
		return hist, func() {}
	}
	after, exact := since.after(hid)
	if !exact {
		f.Since, f.Seen = since.at, nil
		if !since.all {
			f.Seen = since.seen
		}
	}
	// Copied under the history's lock (the ring reuses its memory), into one arena.
	var buf []byte
	var ends []int
	var seqs []uint64
	fn := func(seq uint64, rec []byte) bool {
		if lines <= 0 {
			return false
		}
		if exact && seq <= after {
			return true
		}
		m, err := message.Decode(rec)
		if err == nil && f.Match(&m) {
			buf = append(buf, rec...)
			ends = append(ends, len(buf))
			seqs = append(seqs, seq)
		}
		return true
	}
	if tail != nil {
		hist.end, cancel = join(app, fn, tail)
	} else {
		hist.end, cancel = app.History.Subscribe(fn, nil)
	}
	first := max(0, len(ends)-lines)
	start := 0
	if first > 0 {
		start = ends[first-1]
	}
	hist.recs = make([][]byte, 0, len(ends)-first)
	for _, end := range ends[first:] {
		hist.recs = append(hist.recs, buf[start:end:end])
		start = end
	}
	hist.seqs = seqs[first:]
	return hist, cancel
}

// line is a record of a merged history with its position.
type line struct {
	rec []byte
	hid uint32
	seq uint64
}

// merge interleaves the replicas' histories by timestamp and keeps the newest lines.
// Each replica's lines stay in the order it stored them (a k-way merge: the next
// line is the oldest of the replicas' next lines, the first replica's on a tie), so
// a stream is, per replica, a run of consecutive sequence numbers and a cursor of
// one position per replica says exactly what was sent. With every replica's lines
// in time order, as they are unless a producer's clock is off or lines are late,
// this is the order of their timestamps.
func merge(parts []part, lines int) []line {
	type head struct {
		p    *part
		i    int
		time int64
	}
	timeOf := func(rec []byte) int64 {
		m, _ := message.Decode(rec)
		return m.Time
	}
	heads := make([]head, 0, len(parts))
	total := 0
	for i := range parts {
		if p := &parts[i]; len(p.recs) > 0 {
			heads = append(heads, head{p: p, time: timeOf(p.recs[0])})
			total += len(p.recs)
		}
	}
	all := make([]line, 0, total)
	for len(heads) > 0 {
		k := 0
		for j := 1; j < len(heads); j++ {
			if heads[j].time < heads[k].time {
				k = j
			}
		}
		hd := &heads[k]
		l := line{rec: hd.p.recs[hd.i], hid: hd.p.hid}
		if hd.p.hid != 0 {
			l.seq = hd.p.seqs[hd.i]
		}
		all = append(all, l)
		if hd.i++; hd.i == len(hd.p.recs) {
			heads = slices.Delete(heads, k, k+1)
		} else {
			hd.time = timeOf(hd.p.recs[hd.i])
		}
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return all
}
