package drainpeer

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Request is one POST an HTTP receiver got.
type Request struct {
	Header http.Header
	Body   []byte
	Msgs   []wire.Message
	// Bad counts frames that did not parse.
	Bad int
	// Status is what the receiver answered; Respond may add ReplyHeader (Retry-After).
	Status      int
	ReplyHeader http.Header
	User        string
	Pass        string
	// At is when the request arrived.
	At time.Time
}

// HTTPReceiver is a logplex-1 drain receiver. Respond chooses the answer to the n-th
// request (0-based); nil answers 200.
type HTTPReceiver struct {
	Server  *httptest.Server
	URL     string
	Respond func(n int, r *Request) int

	mu   sync.Mutex
	reqs []*Request
}

// NewHTTPReceiver starts a receiver; with tlsCert it serves HTTPS.
func NewHTTPReceiver(t testing.TB, tlsCert *tls.Certificate, respond func(n int, r *Request) int) *HTTPReceiver {
	t.Helper()
	rv := &HTTPReceiver{Respond: respond}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r := &Request{Header: req.Header.Clone(), Body: body, At: time.Now()}
		r.User, r.Pass, _ = req.BasicAuth()
		_, _ = wire.SplitFrames(body, 64<<10, func(rec []byte) error {
			m, err := wire.Parse(rec)
			if err != nil {
				r.Bad++
				return nil
			}
			r.Msgs = append(r.Msgs, m)
			return nil
		})
		rv.mu.Lock()
		n := len(rv.reqs)
		rv.mu.Unlock()
		r.Status = 200
		r.ReplyHeader = http.Header{}
		if rv.Respond != nil {
			r.Status = rv.Respond(n, r)
		}
		rv.mu.Lock()
		rv.reqs = append(rv.reqs, r)
		rv.mu.Unlock()
		for k, v := range r.ReplyHeader {
			w.Header()[k] = v
		}
		w.WriteHeader(r.Status)
	})
	if tlsCert != nil {
		rv.Server = httptest.NewUnstartedServer(h)
		rv.Server.TLS = &tls.Config{Certificates: []tls.Certificate{*tlsCert}}
		rv.Server.StartTLS()
	} else {
		rv.Server = httptest.NewServer(h)
	}
	rv.URL = rv.Server.URL
	t.Cleanup(rv.Server.Close)
	return rv
}

// Requests returns what was received so far.
func (rv *HTTPReceiver) Requests() []*Request {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]*Request(nil), rv.reqs...)
}

// Accepted returns the messages of requests answered 2xx, in order.
func (rv *HTTPReceiver) Accepted() []wire.Message {
	var out []wire.Message
	for _, r := range rv.Requests() {
		if r.Status >= 200 && r.Status < 300 {
			out = append(out, r.Msgs...)
		}
	}
	return out
}

// WaitAccepted waits until n messages were accepted (see SyslogSink.WaitFor).
func (rv *HTTPReceiver) WaitAccepted(t testing.TB, n int) []wire.Message {
	t.Helper()
	return waitFor(t, n, rv.Accepted)
}
