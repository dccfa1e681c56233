package session

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/message"
)

// Replica-to-replica protocol. The replica serving a session asks every other
// replica for its part with POST PeerPath: a JSON peerRequest, authenticated by
// PeerAuthHeader = "<key id> <unix seconds> <base64url HMAC-SHA256>" over the time
// and the body, with a key derived from a session key (so peer calls and session
// ids never share a key). The answer is a stream of frames: a type byte, a uvarint
// length and a record in the router's message encoding.
const (
	PeerPath       = "/peer/v1/session"
	PeerAuthHeader = "Kubeplex-Peer-Auth"
	peerMediaType  = "application/x-kubeplex-session-frames"
	// peerSkew is how far a peer call's time may be from the receiver's clock.
	peerSkew = 30 * time.Second

	frameHistory    = 'h' // a history record
	frameEndHistory = 'e' // history is complete; tail records follow
	frameTail       = 't' // a tail record
)

// peerRequest is what a replica asks another for.
type peerRequest struct {
	App    string `json:"app"`
	Lines  int    `json:"lines"`
	Tail   bool   `json:"tail"`
	Source string `json:"source,omitempty"`
	Dyno   string `json:"dyno,omitempty"`
	Since  int64  `json:"since,omitempty"`
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

// verifyPeer checks the auth header of a peer call.
func verifyPeer(keys []routing.SessionKey, now time.Time, header string, body []byte) error {
	parts := strings.Split(header, " ")
	if len(parts) != 3 || len(header) > 256 {
		return errPeerAuth
	}
	ts, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return errPeerAuth
	}
	if d := now.Sub(time.Unix(ts, 0)); d > peerSkew || d < -peerSkew {
		return errPeerAuth
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return errPeerAuth
	}
	for i := range keys {
		if keys[i].ID != parts[0] {
			continue
		}
		key, ok := peerKey(&keys[i])
		if ok && hmac.Equal(sig, peerMAC(key, parts[1], body)) {
			return nil
		}
	}
	return errPeerAuth
}

func appendFrame(dst []byte, typ byte, rec []byte) []byte {
	dst = append(dst, typ)
	dst = binary.AppendUvarint(dst, uint64(len(rec)))
	return append(dst, rec...)
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
// nil when the peer failed before completing it), tail records go to the sink.
type peerStream struct {
	hist chan [][]byte
}

// askPeer streams req from the peer at base until ctx ends or the peer ends.
func (h *Handler) askPeer(ctx context.Context, base string, req peerRequest, tail *sink) *peerStream {
	ps := &peerStream{hist: make(chan [][]byte, 1)}
	go func() {
		delivered := false
		defer func() {
			if !delivered {
				ps.hist <- nil
			}
		}()
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
		var hist [][]byte
		var scratch []byte
		for {
			typ, rec, err := readFrame(br, scratch)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, io.EOF) {
					h.metrics.peerErrors.Inc()
					h.log.Warn("session peer stream ended", "peer", base, "err", err)
				}
				return
			}
			scratch = rec[:0]
			switch typ {
			case frameHistory:
				if !delivered {
					hist = append(hist, bytes.Clone(rec))
				}
			case frameEndHistory:
				if !delivered {
					delivered = true
					ps.hist <- hist
				}
			case frameTail:
				if tail != nil {
					tail.Offer([][]byte{rec})
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
	if err := verifyPeer(h.keys(), time.Now(), r.Header.Get(PeerAuthHeader), body); err != nil {
		h.metrics.refused.WithLabelValues("peer-auth").Inc()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var req peerRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Lines < 0 || req.Lines > MaxLines {
		http.Error(w, "bad peer request", http.StatusBadRequest)
		return
	}
	app, ok := h.apps.App(req.App)
	if !ok {
		http.Error(w, "app not found", http.StatusNotFound)
		return
	}
	f := Filter{Source: req.Source, Dyno: req.Dyno}
	var tail *sink
	if req.Tail {
		tail = newSink(f, h.opts.BufferLines)
		tail.dropCounter = h.metrics.dropped
	}
	hist, cancel := snapshot(app, req.Lines, Filter{Source: req.Source, Dyno: req.Dyno, Since: req.Since}, tail)
	defer cancel()
	keepOpen(w)
	w.Header().Set("Content-Type", peerMediaType)
	fl, _ := w.(http.Flusher)
	out := make([]byte, 0, 64<<10)
	for _, rec := range hist {
		out = appendFrame(out, frameHistory, rec)
	}
	out = appendFrame(out, frameEndHistory, nil)
	if _, err := w.Write(out); err != nil || tail == nil {
		return
	}
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tail.notify:
		}
		out = out[:0]
		tail.take(func(rec []byte) { out = appendFrame(out, frameTail, rec) })
		if len(out) == 0 {
			continue
		}
		if _, err := w.Write(out); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}
