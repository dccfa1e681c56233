package session

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/router/message"
)

// Replica-to-replica protocol. The replica serving a session asks every other
// replica for its part with POST PeerPath: a JSON peerRequest, authenticated by
// PeerAuthHeader = "<key id> <unix seconds> <base64url HMAC-SHA256>" over the time
// and the body, with a key derived from a session key (so peer calls and session
// ids never share a key). The body names the replica it is for (To, the host:port
// it was sent to) and carries a random Nonce; a replica refuses a call addressed to
// another and a nonce it has accepted before, so a captured call cannot be played
// again, to it or to another replica, within its time window (after it, the time
// check refuses it). The answer is a stream of frames: a type byte, a uvarint
// length and a record in the router's message encoding. A caller that asks for
// sequence numbers (Seq) gets first an ID frame (the replica's history ID for the
// app, 4 bytes big-endian), history and tail records prefixed by their sequence
// numbers (uvarint; 0: none, for the replica's own L11 notices), and before the end
// of history a frame with the sequence number the tail starts after; routers older
// than that ignore Seq and send plain frames, whose lines then resume by time (a
// caller ignores frame types it does not know, so the end frame is optional).
const (
	PeerPath       = "/peer/v1/session"
	PeerAuthHeader = "Kubeplex-Peer-Auth"
	peerMediaType  = "application/x-kubeplex-session-frames"
	// peerSkew is how far a peer call's time may be from the receiver's clock.
	peerSkew = 30 * time.Second

	frameHistory    = 'h' // a history record
	frameEndHistory = 'e' // history is complete; tail records follow
	frameTail       = 't' // a tail record
	frameID         = 'i' // the replica's history ID (Seq)
	frameHistorySeq = 'H' // a history record with its sequence number (Seq)
	frameTailSeq    = 'T' // a tail record with its sequence number (Seq)
	frameEnd        = 'p' // the newest sequence number when the tail began (Seq; uvarint)
)

// peerRequest is what a replica asks another for.
type peerRequest struct {
	App    string   `json:"app"`
	Lines  int      `json:"lines"`
	Tail   bool     `json:"tail"`
	Source string   `json:"source,omitempty"`
	Dyno   string   `json:"dyno,omitempty"`
	Since  int64    `json:"since,omitempty"`
	Seen   []uint32 `json:"seen,omitempty"`
	// Pos are the stream's positions per history; Seq asks for numbered frames.
	Pos []session.Pos `json:"pos,omitempty"`
	Seq bool          `json:"seq,omitempty"`
	// To is the host:port the call is sent to; Nonce is random, once per call.
	To    string `json:"to"`
	Nonce string `json:"nonce"`
}

// maxNonces bounds the replay cache: calls beyond it within one time window are
// refused (a replica gets a peer call per session opened on another replica).
const maxNonces = 1 << 16

// replayGuard remembers the nonces of accepted peer calls until their time window
// ends.
type replayGuard struct {
	mu   sync.Mutex
	seen map[string]time.Time // nonce → when its call's time leaves the window
}

var errReplayed = errors.New("peer call replayed")

// admit records nonce for a call made at ts, or says why it may not run.
func (g *replayGuard) admit(nonce string, ts, now time.Time) error {
	if len(nonce) < 16 || len(nonce) > 64 {
		return errPeerAuth
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	if _, ok := g.seen[nonce]; ok {
		return errReplayed
	}
	if len(g.seen) >= maxNonces/2 {
		for n, until := range g.seen {
			if now.After(until) {
				delete(g.seen, n)
			}
		}
	}
	if len(g.seen) >= maxNonces {
		return errors.New("too many peer calls")
	}
	g.seen[nonce] = ts.Add(peerSkew)
	return nil
}

// addressedHere reports whether to (host:port) names the address the call came in
// on. A host name (static --peers by name) can only be compared with the Host the
// caller used; discovered peers are pod IPs, which are compared with the socket's.
func addressedHere(to string, r *http.Request) bool {
	host, port, err := net.SplitHostPort(to)
	if err != nil {
		return false
	}
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if la == nil {
		return false
	}
	lhost, lport, err := net.SplitHostPort(la.String())
	if err != nil || port != lport {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.Equal(net.ParseIP(lhost))
	}
	return strings.EqualFold(to, r.Host)
}

func newNonce() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return base64.RawURLEncoding.EncodeToString(b)
}

func peerKey(k *routing.SessionKey) ([]byte, bool) {
	b, ok := k.Bytes()
	if !ok {
		return nil, false
	}
	h := hmac.New(sha256.New, b)
	h.Write([]byte("kubeplex-peer-key-v1"))
	return h.Sum(nil), true
}

func peerMAC(key []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("kubeplex-peer-v1\n"))
	h.Write([]byte(ts))
	h.Write([]byte{'\n'})
	h.Write(body)
	return h.Sum(nil)
}

// signPeer returns the auth header value for body, with the newest key.
func signPeer(keys []routing.SessionKey, now time.Time, body []byte) (string, error) {
	for i := range keys {
		if key, ok := peerKey(&keys[i]); ok {
			ts := strconv.FormatInt(now.Unix(), 10)
			return keys[i].ID + " " + ts + " " + base64.RawURLEncoding.EncodeToString(peerMAC(key, ts, body)), nil
		}
	}
	return "", errors.New("no session key to sign a peer call with")
}

var errPeerAuth = errors.New("peer authentication failed")

// verifyPeer checks the auth header of a peer call and returns the call's time.
func verifyPeer(keys []routing.SessionKey, now time.Time, header string, body []byte) (time.Time, error) {
	parts := strings.Split(header, " ")
	if len(parts) != 3 || len(header) > 256 {
		return time.Time{}, errPeerAuth
	}
	ts, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return time.Time{}, errPeerAuth
	}
	at := time.Unix(ts, 0)
	if d := now.Sub(at); d > peerSkew || d < -peerSkew {
		return time.Time{}, errPeerAuth
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2])
	// The decoder skips CR and LF even in strict mode: only the canonical encoding
	// is the header signed, so another spelling of the same MAC is refused too
	// (FuzzVerifyPeer found one with a newline in it).
	if err != nil || base64.RawURLEncoding.EncodeToString(sig) != parts[2] {
		return time.Time{}, errPeerAuth
	}
	for i := range keys {
		if keys[i].ID != parts[0] {
			continue
		}
		key, ok := peerKey(&keys[i])
		if ok && hmac.Equal(sig, peerMAC(key, parts[1], body)) {
			return at, nil
		}
	}
	return time.Time{}, errPeerAuth
}

func appendFrame(dst []byte, typ byte, rec []byte) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(len(rec)))
	return append(dst, rec...)
}

// appendSeqFrame appends a frame whose payload is seq (uvarint) then rec.
func appendSeqFrame(dst []byte, typ byte, seq uint64, rec []byte) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(uvarintLen(seq)+len(rec)))
	dst = binary.AppendUvarint(dst, seq)
	return append(dst, rec...)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// splitSeq reads the sequence number in front of a numbered frame's record.
func splitSeq(payload []byte) (uint64, []byte, error) {
	seq, n := binary.Uvarint(payload)
	if n <= 0 {
		return 0, nil, errors.New("peer frame without a sequence number")
	}
	return seq, payload[n:], nil
}

// readFrame reads one frame; rec is valid until the next call.
func readFrame(r *bufio.Reader, scratch []byte) (typ byte, rec []byte, err error) {
	typ, err = r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return 0, nil, err
	}
	if n > message.MaxEncoded+64 {
		return 0, nil, fmt.Errorf("peer frame of %d bytes", n)
	}
	if cap(scratch) < int(n) {
		scratch = make([]byte, n)
	}
	rec = scratch[:n]
	if _, err := io.ReadFull(r, rec); err != nil {
		return 0, nil, err
	}
	return typ, rec, nil
}

// peerStream is one replica's answer being read: its history arrives on hist (once,
// empty when the peer failed before completing it), tail records go to the sink.
type peerStream struct {
	hist chan part
}

// askPeer streams req from the peer at base until ctx ends or the peer ends.
func (h *Handler) askPeer(ctx context.Context, base string, req peerRequest, tail *sink) *peerStream {
	ps := &peerStream{hist: make(chan part, 1)}
	go func() {
		delivered := false
		defer func() {
			if !delivered {
				ps.hist <- part{}
			}
		}()
		if u, err := url.Parse(base); err == nil {
			req.To = u.Host
		}
		req.Nonce = newNonce()
		body, _ := json.Marshal(req) // plain struct
		auth, err := signPeer(h.keys(), time.Now(), body)
		if err != nil {
			h.metrics.peerErrors.Inc()
			return
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+PeerPath, bytes.NewReader(body))
		if err != nil {
			h.metrics.peerErrors.Inc()
			return
		}
		hr.Header.Set(PeerAuthHeader, auth)
		hr.Header.Set("Content-Type", "application/json")
		resp, err := h.client.Do(hr)
		if err != nil {
			if ctx.Err() == nil {
				h.metrics.peerErrors.Inc()
				h.log.Warn("session peer unreachable", "peer", base, "err", err)
			}
			return
		}
		defer func() { _ = resp.Body.Close() }() // read-only body
		if resp.StatusCode != http.StatusOK {
			h.metrics.peerErrors.Inc()
			h.log.Warn("session peer refused", "peer", base, "status", resp.StatusCode)
			return
		}
		br := bufio.NewReaderSize(resp.Body, 64<<10)
		var hist part
		var scratch []byte
		for {
			typ, rec, err := readFrame(br, scratch)
			var seq uint64
			if err == nil {
				scratch = rec[:0]
				if typ == frameHistorySeq || typ == frameTailSeq {
					seq, rec, err = splitSeq(rec)
				}
			}
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, io.EOF) {
					h.metrics.peerErrors.Inc()
					h.log.Warn("session peer stream ended", "peer", base, "err", err)
				}
				return
			}
			switch typ {
			case frameID:
				if len(rec) == 4 && !delivered && len(hist.recs) == 0 {
					hist.hid = binary.BigEndian.Uint32(rec)
				}
			case frameHistory, frameHistorySeq:
				if !delivered {
					hist.recs = append(hist.recs, bytes.Clone(rec))
					hist.seqs = append(hist.seqs, seq)
				}
			case frameEnd:
				if end, n := binary.Uvarint(rec); n > 0 && !delivered {
					hist.end = end
				}
			case frameEndHistory:
				if !delivered {
					delivered = true
					ps.hist <- hist
				}
			case frameTail, frameTailSeq:
				if tail != nil {
					hid := hist.hid
					switch {
					case seq == 0:
						hid = 0 // the peer's own notice (L11): no position
					case len(rec) == 0:
						tail.skip(hid, seq) // lines the peer dropped for us, announced by its L11
						continue
					}
					tail.offer(hid, seq, [][]byte{rec})
				}
			}
		}
	}()
	return ps
}

// servePeer answers another replica: this replica's history (filtered, newest
// req.Lines), an end-of-history frame, then tail records while the caller listens.
func (h *Handler) servePeer(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err != nil {
		http.Error(w, "read request", http.StatusBadRequest)
		return
	}
	now := time.Now()
	at, err := verifyPeer(h.keys(), now, r.Header.Get(PeerAuthHeader), body)
	if err != nil {
		h.metrics.refused.WithLabelValues("peer-auth").Inc()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req peerRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Lines < 0 || req.Lines > MaxLines {
		http.Error(w, "bad peer request", http.StatusBadRequest)
		return
	}
	if !addressedHere(req.To, r) {
		h.metrics.refused.WithLabelValues("peer-auth").Inc()
		http.Error(w, "peer call addressed to another replica", http.StatusUnauthorized)
		return
	}
	if err := h.nonces.admit(req.Nonce, at, now); err != nil {
		h.metrics.refused.WithLabelValues("peer-replay").Inc()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	app, ok := h.apps.App(req.App)
	if !ok {
		http.Error(w, "app not found", http.StatusNotFound)
		return
	}
	if len(req.Pos) > session.MaxPos || len(req.Seen) > session.MaxSeen {
		http.Error(w, "bad peer request", http.StatusBadRequest)
		return
	}
	f := Filter{Source: req.Source, Dyno: req.Dyno}
	var tail *sink
	if req.Tail {
		tail = newSink(f, h.opts.BufferLines, app.History.ID())
		tail.dropCounter = h.metrics.dropped
	}
	since := cursor{at: req.Since, seen: req.Seen, all: len(req.Seen) == 0, pos: req.Pos}
	hist, cancel := snapshot(app, req.Lines, f, &since, tail, subscribeDirect)
	defer cancel()
	keepOpen(w)
	w.Header().Set("Content-Type", peerMediaType)
	fl, _ := w.(http.Flusher)
	out := make([]byte, 0, 64<<10)
	if req.Seq {
		out = appendFrame(out, frameID, binary.BigEndian.AppendUint32(nil, hist.hid))
	}
	for i, rec := range hist.recs {
		if req.Seq {
			out = appendSeqFrame(out, frameHistorySeq, hist.seqs[i], rec)
		} else {
			out = appendFrame(out, frameHistory, rec)
		}
	}
	if req.Seq {
		out = appendFrame(out, frameEnd, binary.AppendUvarint(nil, hist.end))
	}
	out = appendFrame(out, frameEndHistory, nil)
	if _, err := w.Write(out); err != nil || tail == nil {
		return
	}
	if fl != nil {
		fl.Flush()
	}
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tail.notify:
		}
		if !tail.coalesce(r.Context(), lastWrite, gap) {
			return
		}
		out = out[:0]
		tail.take(func(rec []byte, p recPos) {
			if rec == nil { // lines this replica dropped for the session: an empty numbered frame
				if req.Seq {
					out = appendSeqFrame(out, frameTailSeq, p.seq, nil)
				}
				return
			}
			if req.Seq {
				out = appendSeqFrame(out, frameTailSeq, p.seq, rec)
			} else {
				out = appendFrame(out, frameTail, rec)
			}
		})
		if len(out) == 0 {
			continue
		}
		if _, err := w.Write(out); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		lastWrite = time.Now()
	}
}
