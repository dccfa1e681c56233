// Package fakerouter is a real logplex-1 HTTP receiver on 127.0.0.1 for the
// collector's tests: it decodes every batch with wire.ReadBatch, checks the token, and
// can be taken down (connection refused) and brought back on the same port.
package fakerouter

import (
	"bytes"
	"errors"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Record is one received message.
type Record struct {
	wire.Message
	FrameID string
}

// Router records what it receives.
type Router struct {
	Addr string

	mu      sync.Mutex
	tokens  []string // accepted
	refused int      // 401 answers
	used    map[string]int
	records []Record
	batches int
	bad     []string
	gzipped int
	status  int // answer instead of 204 when non-zero
	failed  int // requests answered with status
	held    int // requests waiting out delay now
	delay   time.Duration
	ln      net.Listener
	srv     *http.Server
	changed chan struct{}
	t       testing.TB
}

// Start starts a router that accepts token.
func Start(t testing.TB, token string) *Router {
	t.Helper()
	r := &Router{tokens: []string{token}, used: map[string]int{}, t: t, changed: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	r.Addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.Down)
	return r
}

// URL is the ingest URL.
func (r *Router) URL() string { return "http://" + r.Addr + "/logs" }

func (r *Router) serve(ln net.Listener) {
	r.ln = ln
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

// Down closes the listener and every connection: the collector sees connection
// refused until Up.
func (r *Router) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same address.
func (r *Router) Up() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", r.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.Addr, err)
	}
	r.mu.Lock()
	r.serve(ln)
	r.mu.Unlock()
}

// SetStatus makes the router answer status to every POST (0 restores 204).
func (r *Router) SetStatus(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

// SetTokens replaces the accepted tokens (a rotation: the new one plus, during the
// grace period, the old one).
func (r *Router) SetTokens(tokens ...string) {
	r.mu.Lock()
	r.tokens = slices.Clone(tokens)
	r.mu.Unlock()
}

// Auth returns how many batches each token got accepted and how many POSTs were
// refused with 401.
func (r *Router) Auth() (accepted map[string]int, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.used), r.refused
}

// SetDelay makes the router wait d before taking each batch; a batch whose sender
// hangs up meanwhile is not taken, as a real router would not have answered it.
func (r *Router) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

func (r *Router) handle(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/logs" {
		http.NotFound(w, req)
		return
	}
	user, _, _ := req.BasicAuth()
	tok, ok := wire.RequestToken(req)
	r.mu.Lock()
	status, delay := r.status, r.delay
	if !ok || !slices.Contains(r.tokens, tok) || user != "token" {
		r.refused++
		r.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="kubeplex"`)
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	if status != 0 {
		r.failed++
		r.mu.Unlock()
		http.Error(w, http.StatusText(status), status)
		return
	}
	r.mu.Unlock()
	b, err := wire.ReadBatch(req, 0, 0, nil)
	if err != nil {
		r.mu.Lock()
		r.bad = append(r.bad, err.Error())
		r.mu.Unlock()
		var be *wire.BatchError
		if errors.As(err, &be) {
			http.Error(w, be.Reason, http.StatusBadRequest)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if delay > 0 {
		r.mu.Lock()
		r.held++
		r.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
		}
		r.mu.Lock()
		r.held--
		r.mu.Unlock()
		if req.Context().Err() != nil {
			return
		}
	}
	var recs []Record
	for _, rec := range b.Records {
		m, err := wire.Parse(rec)
		if err != nil {
			r.mu.Lock()
			r.bad = append(r.bad, err.Error())
			r.mu.Unlock()
			http.Error(w, wire.ReasonMalformed, http.StatusBadRequest)
			return
		}
		if f, err := wire.Scan(rec); err == nil && f.StructuredData != nil {
			m.StructuredData = bytes.Clone(f.StructuredData) // Parse leaves SD out
		}
		recs = append(recs, Record{Message: m, FrameID: b.FrameID})
	}
	r.mu.Lock()
	r.records = append(r.records, recs...)
	r.batches++
	r.used[tok]++
	if req.Header.Get("Content-Encoding") == "gzip" {
		r.gzipped++
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// Held returns how many accepted requests are waiting out the SetDelay delay now,
// their batch read but not yet answered.
func (r *Router) Held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// Failed returns how many requests were answered with the SetStatus status.
func (r *Router) Failed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Records returns a copy of everything received so far.
func (r *Router) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Stats returns the number of batches accepted, of gzip batches, and the refusals.
func (r *Router) Stats() (batches, gzipped int, bad []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.batches, r.gzipped, append([]string(nil), r.bad...)
}

// WaitFor waits until cond holds on the records received, or fails the test after
// timeout (a failure guard, not a timing assertion).
func (r *Router) WaitFor(timeout time.Duration, what string, cond func([]Record) bool) []Record {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := r.Records()
		if cond(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; got %d records", what, len(recs))
		}
		select {
		case <-r.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Texts returns the texts of records from source app (or all when source is "").
func Texts(recs []Record, source string) []string {
	var out []string
	for _, r := range recs {
		if source == "" || r.AppName == source {
			out = append(out, string(r.Text))
		}
	}
	return out
}

// Loss sums the counts of L12 and L13 notices in recs.
func Loss(recs []Record) (dropped, lost int) {
	for _, r := range recs {
		if r.AppName != "kubeplex" {
			continue
		}
		txt := string(r.Text)
		for _, p := range []struct {
			prefix string
			n      *int
		}{{"Error L12: ", &dropped}, {"Error L13: ", &lost}} {
			if rest, ok := strings.CutPrefix(txt, p.prefix); ok {
				if i := strings.IndexByte(rest, ' '); i > 0 {
					n, _ := strconv.Atoi(rest[:i])
					*p.n += n
				}
			}
		}
	}
	return dropped, lost
}
