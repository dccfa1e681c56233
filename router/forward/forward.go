// Package forward carries a drain's lines from a router replica that is not one of
// the drain's owners (router --drain-owners) to one that is, so that only the owners
// connect to the drain's destination (docs/scaling.md, "Drain ownership").
//
// The forwarding replica runs the drain as usual, with its bounded drop-oldest
// queue, its L10 notices and its counters, but its runner's Drain is a *Drain of
// this package: each batch (octet-counted frames with the drain token in HOSTNAME,
// as a syslog drain writes them) is POSTed to an owner's Path, authenticated as the
// session peer calls are (router/session: a key derived from the table's session
// key, the time, the address the call is for and a nonce the receiver will not
// accept twice). The owner offers the lines to its own runner of the drain, which
// delivers them in the order they came. A batch is either taken by an owner (the
// owner's 204), refused before it was taken (tried at the next owner, then again
// until RetryFor), or lost in between (a cut connection: counted as dropped by the
// forwarder, although the owner may have taken it), so a line is never delivered
// twice.
//
// For a drain that uses its lines' origins (an OTLP drain: the pod and node of the
// collector that sent each line), the call also carries them, in OriginsHeader, as
// runs of frames that share an origin; the signed header line holds the value's
// SHA-256, so the owner takes an origin only from a call it authenticated, and an
// owner of an earlier version, which knows neither, delivers the lines without.
package forward

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/session"
)

// Path is where an owner takes forwarded batches (the router's HTTP port).
const Path = "/peer/v1/drain"

// maxBatchBytes bounds one forwarded batch's frames; the call's body adds a header.
const maxBatchBytes = 256 << 10

// maxHeader bounds the JSON header line of a call.
const maxHeader = 4 << 10

// header is the first line of a call's body; the signature covers the whole body.
type header struct {
	Drain string `json:"drain"`
	// To is the host:port the call is sent to; Nonce is random, once per call.
	To    string `json:"to"`
	Nonce string `json:"nonce"`
	// From is the forwarding replica (its base URL), for the owner's logs.
	From string `json:"from,omitempty"`
	// Origins is the hex SHA-256 of the call's OriginsHeader, when it has one.
	Origins string `json:"origins,omitempty"`
}

// OriginsHeader carries a forwarded batch's origins: base64 (standard, unpadded)
// of runs, each a uvarint count of consecutive frames and their origin
// (message.AppendOrigin; two zero bytes for none). The runs cover every frame.
const OriginsHeader = "Kubeplex-Forward-Origins"

// maxOrigins bounds the runs of one call (before base64), well inside an HTTP
// server's header limit. A batch whose lines come from so many collectors in turn
// that its runs do not fit sends the rest of its frames without origins: lines
// from one POST share one origin, so a batch has few runs.
const maxOrigins = 32 << 10

// Client sends the forwarded batches of one replica.
type Client struct {
	// Self is this replica's base URL; it is skipped among the owners.
	Self string
	// Owners returns the base URLs of a drain's owners, first choice first.
	Owners func(drainID string) []string
	// Keys returns the session keys calls are signed with (newest first).
	Keys func() []routing.SessionKey
	// HTTP carries the calls (the session peer calls' transport).
	HTTP *http.Client
	// RetryFor bounds how long a batch is tried again while no owner takes it
	// (owners unreachable, or not yet agreeing that they own the drain) [5 s]. The
	// queue keeps taking lines meanwhile, dropping its oldest when full.
	RetryFor time.Duration
}

// NewDrain returns the drain that forwards drain cfg's batches to its owners;
// with origins (the owners' drain is a drain.OriginUser) it carries the lines'
// origins along.
func (c *Client) NewDrain(cfg *drain.Config, env drain.Env, origins bool) *Drain {
	return &Drain{c: c, id: cfg.ID, report: env.Report, origins: origins}
}

// Drain forwards one drain's batches. It is a drain.Forwarding drain.Drain.
type Drain struct {
	c       *Client
	id      string
	report  func(error)
	origins bool
	runs    []byte // the origin runs of the batch being sent
	enc     []byte // runs in base64
}

// UsesOrigin makes the runner keep the batch's origins when the owners' drain
// uses them (drain.OriginUser).
func (d *Drain) UsesOrigin() bool { return d.origins }

// Forwards marks the drain as Forwarding: what it takes is counted as forwarded.
func (*Drain) Forwards() {}

// Limits bounds a forwarded batch.
func (*Drain) Limits() drain.Limits { return drain.Limits{Messages: 4096, Bytes: maxBatchBytes} }

// Close has nothing to release: the calls' connections belong to the Client.
func (*Drain) Close() error { return nil }

// errUncertain marks a failure after which the owner may have taken the batch.
var errUncertain = errors.New("owner may have taken the batch")

// errNoOwner: the member list names no other owner (this replica is becoming one).
var errNoOwner = errors.New("no other owner of the drain")

// Deliver hands b to the first owner that takes it.
func (d *Drain) Deliver(ctx context.Context, b *drain.Batch) (int, error) {
	if b.Len() == 0 {
		return 0, nil
	}
	retryFor := d.c.RetryFor
	if retryFor <= 0 {
		retryFor = 5 * time.Second
	}
	deadline := time.Now().Add(retryFor)
	pause := backoff.New(50*time.Millisecond, time.Second)
	origins := ""
	if d.origins {
		origins = d.encodeOrigins(b)
	}
	for {
		err := errNoOwner
		for _, owner := range d.c.Owners(d.id) {
			if owner == d.c.Self {
				continue
			}
			if ctx.Err() != nil {
				break
			}
			if err = d.c.send(ctx, owner, d.id, b.Bytes(), origins); err == nil {
				return b.Len(), nil
			}
			if errors.Is(err, errUncertain) {
				d.report(err)
				return 0, err
			}
		}
		if ctx.Err() != nil {
			// Every owner tried refused the batch before taking any of it: it is
			// whole, for the drain's next runner (drain.Runner.Handover).
			return 0, errors.Join(drain.ErrUnsent, ctx.Err(), err)
		}
		d.report(err)
		if time.Now().After(deadline) {
			return 0, err
		}
		if !backoff.Sleep(ctx, pause.Next()) {
			return 0, errors.Join(drain.ErrUnsent, ctx.Err(), err)
		}
	}
}

// encodeOrigins returns b's origin runs as OriginsHeader carries them, or "" when
// none of its frames has an origin.
func (d *Drain) encodeOrigins(b *drain.Batch) string {
	runs, known := d.runs[:0], false
	for i := 0; i < b.Len(); {
		o := b.Origin(i)
		j := i + 1
		for j < b.Len() && bytes.Equal(b.Origin(j), o) {
			j++
		}
		if len(o) == 0 {
			o = noOrigin
		} else {
			known = true
		}
		if len(runs)+binary.MaxVarintLen64+len(o)+binary.MaxVarintLen64+len(noOrigin) > maxOrigins {
			// Out of room: the rest of the batch goes without its origins.
			runs = binary.AppendUvarint(runs, uint64(b.Len()-i))
			runs = append(runs, noOrigin...)
			break
		}
		runs = binary.AppendUvarint(runs, uint64(j-i))
		runs = append(runs, o...)
		i = j
	}
	d.runs = runs
	if !known {
		return ""
	}
	d.enc = base64.RawStdEncoding.AppendEncode(d.enc[:0], runs)
	return string(d.enc)
}

// noOrigin is a run's origin when its frames have none.
var noOrigin = []byte{0, 0}

// send POSTs one batch to owner, with its origin runs unless origins is "". An
// error wrapping errUncertain means the batch may have been taken; any other
// means it was not.
func (c *Client) send(ctx context.Context, owner, id string, frames []byte, origins string) error {
	u, err := url.Parse(owner)
	if err != nil {
		return fmt.Errorf("forward to %s: %w", owner, err)
	}
	hd := header{Drain: id, To: u.Host, Nonce: session.NewNonce(), From: c.Self}
	if origins != "" {
		sum := sha256.Sum256([]byte(origins))
		hd.Origins = hex.EncodeToString(sum[:])
	}
	h, _ := json.Marshal(hd) // plain struct
	body := make([]byte, 0, len(h)+1+len(frames))
	body = append(append(append(body, h...), '\n'), frames...)
	auth, err := session.SignPeerCall(c.Keys(), time.Now(), body)
	if err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(owner, "/")+Path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("forward to %s: %w", owner, err)
	}
	req.Header.Set(session.PeerAuthHeader, auth)
	req.Header.Set("Content-Type", mediaType)
	if origins != "" {
		req.Header.Set(OriginsHeader, origins)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("forward to %s: %w", owner, err) // never sent
		}
		return fmt.Errorf("forward to %s: %w: %w", owner, errUncertain, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // keep the connection
	_ = resp.Body.Close()                                        // read-only body
	if resp.StatusCode != http.StatusNoContent {
		// The owner answers before it takes anything unless it took everything.
		return fmt.Errorf("forward to %s: %s", owner, resp.Status)
	}
	return nil
}

const mediaType = "application/x-kubeplex-drain-frames"

// Drains is what the receiving side needs of the router: the runner of a drain
// this replica delivers itself (an owner's runner, not a forwarding one).
type Drains interface {
	Delivering(drainID string) (*drain.Runner, bool)
}

// Handler takes forwarded batches (POST Path).
type Handler struct {
	keys   func() []routing.SessionKey
	drains Drains
	nonces session.ReplayGuard

	received prometheus.Counter
	refused  *prometheus.CounterVec
}

// NewHandler returns the receiving side; keys are the table's session keys.
func NewHandler(keys func() []routing.SessionKey, drains Drains, reg prometheus.Registerer) *Handler {
	h := &Handler{keys: keys, drains: drains,
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeplex_router_forward_received_total",
			Help: "Messages other replicas forwarded to this one, an owner of their drains (--drain-owners)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubeplex_router_forward_refused_total",
			Help: "Forwarded batches refused, by reason (auth, replay, not-owner, bad)."}, []string{"reason"}),
	}
	reg.MustRegister(h.received, h.refused)
	return h
}

// ServeHTTP takes one forwarded batch.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		h.refuse(w, http.StatusRequestEntityTooLarge, "bad", "forwarded batch unreadable or too large")
		return
	}
	now := time.Now()
	at, err := session.VerifyPeerCall(h.keys(), now, r.Header.Get(session.PeerAuthHeader), body)
	if err != nil {
		h.refuse(w, http.StatusUnauthorized, "auth", err.Error())
		return
	}
	line, frames, ok := bytes.Cut(body, []byte{'\n'})
	var hd header
	if !ok || len(line) > maxHeader || json.Unmarshal(line, &hd) != nil || hd.Drain == "" {
		h.refuse(w, http.StatusBadRequest, "bad", "bad forward header")
		return
	}
	if !session.AddressedHere(hd.To, r) {
		h.refuse(w, http.StatusUnauthorized, "auth", "forward addressed to another replica")
		return
	}
	if err := h.nonces.Admit(hd.Nonce, at, now); err != nil {
		h.refuse(w, http.StatusUnauthorized, "replay", err.Error())
		return
	}
	// The origins are taken only as the signed header line vouches for them: a
	// call from anything but an authenticated peer never got this far.
	runs, err := originRuns(r.Header.Get(OriginsHeader), hd.Origins)
	if err != nil {
		h.refuse(w, http.StatusBadRequest, "bad", err.Error())
		return
	}
	run, ok := h.drains.Delivering(hd.Drain)
	if !ok {
		// Not (yet, or no longer) an owner here, or the drain is not in this
		// replica's table: the forwarder tries another owner.
		h.refuse(w, http.StatusConflict, "not-owner", "not an owner of drain "+hd.Drain)
		return
	}
	recs, err := Unframe(frames, message.Host(run.Config.Token), runs)
	if err != nil {
		h.refuse(w, http.StatusBadRequest, "bad", err.Error())
		return
	}
	run.Offer(recs)
	h.received.Add(float64(len(recs)))
	w.WriteHeader(http.StatusNoContent)
}

// readBody reads a call's body, at most maxHeader+maxBatchBytes: in one piece when
// the length is announced (a forwarder always does), without io.ReadAll's copies.
func readBody(r *http.Request) ([]byte, error) {
	const limit = maxHeader + maxBatchBytes
	if n := r.ContentLength; n > 0 && n <= limit {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err == nil && len(body) > limit {
		err = errors.New("forwarded batch too large")
	}
	return body, err
}

func (h *Handler) refuse(w http.ResponseWriter, code int, reason, text string) {
	h.refused.WithLabelValues(reason).Inc()
	http.Error(w, text, code)
}

// originRuns checks a call's OriginsHeader value against the digest its signed
// header line holds and returns the decoded runs (nil when the call has none).
func originRuns(value, digest string) ([]byte, error) {
	if value == "" && digest == "" {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(value))
	if value == "" || digest != hex.EncodeToString(sum[:]) {
		return nil, errors.New("forwarded origins do not match the signed header")
	}
	runs, err := base64.RawStdEncoding.AppendDecode(nil, []byte(value))
	if err != nil {
		return nil, errors.New("forwarded origins are not base64")
	}
	return runs, nil
}

// nextRun reads the run at the front of runs: its frame count and origin (nil for
// none), checking that the origin's names are Kubernetes names as a collector's
// must be (router/ingest).
func nextRun(runs []byte) (n int, origin, rest []byte, err error) {
	c, k := binary.Uvarint(runs)
	if k <= 0 || c == 0 || c > 1<<20 {
		return 0, nil, nil, errors.New("forwarded origin run without a count")
	}
	runs = runs[k:]
	size := 0
	for range 2 {
		if len(runs) <= size || size+1+int(runs[size]) > len(runs) {
			return 0, nil, nil, errors.New("forwarded origin cut short")
		}
		if l := int(runs[size]); l > 0 && !wire.KubeName(string(runs[size+1:size+1+l])) {
			return 0, nil, nil, errors.New("forwarded origin is not a pod and node name")
		}
		size += 1 + int(runs[size])
	}
	origin, rest = runs[:size], runs[size:]
	if size == len(noOrigin) || size > message.MaxOrigin {
		origin = nil
	}
	return int(c), origin, rest, nil
}

// Unframe turns a batch's frames (octet-counted, host in HOSTNAME) back into drain
// records (message.AppendWire), checking each frame's HOSTNAME is host; runs (see
// OriginsHeader; nil for none) give the records their origins. The records share
// one buffer.
func Unframe(frames []byte, host string, runs []byte) ([][]byte, error) {
	buf := make([]byte, 0, len(frames)+len(runs))
	var ends []int
	var origin []byte
	left := 0 // frames left in the current run
	for rest := frames; len(rest) > 0; {
		sp := bytes.IndexByte(rest, ' ')
		if sp <= 0 || sp > 7 {
			return nil, errors.New("forwarded frame without a length")
		}
		n, err := strconv.Atoi(string(rest[:sp]))
		if err != nil || n <= 0 || n > len(rest)-sp-1 {
			return nil, errors.New("forwarded frame with a bad length")
		}
		frame := rest[sp+1 : sp+1+n]
		rest = rest[sp+1+n:]
		// The host follows the second space ("<PRI>1 TIMESTAMP HOST ...").
		k, spaces := 0, 0
		for ; k < len(frame) && spaces < 2; k++ {
			if frame[k] == ' ' {
				spaces++
			}
		}
		if spaces < 2 || !bytes.HasPrefix(frame[k:], []byte(host)) ||
			len(frame) <= k+len(host) || frame[k+len(host)] != ' ' {
			return nil, errors.New("forwarded frame for another drain")
		}
		if runs != nil && left == 0 {
			var err error
			if left, origin, runs, err = nextRun(runs); err != nil {
				return nil, err
			}
		}
		left--
		var ok bool
		if buf, ok = message.AppendWireParts(buf, frame[:k], frame[k+len(host):], origin); !ok {
			return nil, errors.New("forwarded frame with a bad header")
		}
		ends = append(ends, len(buf))
	}
	if left > 0 || len(runs) > 0 {
		return nil, errors.New("forwarded origins do not match the frames")
	}
	recs := make([][]byte, len(ends))
	start := 0
	for i, end := range ends {
		recs[i] = buf[start:end]
		start = end
	}
	return recs, nil
}
