package reliability

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Books are the accountant's ledgers for many drains at once, kept compact (a bit
// per sequence number) so that an hour of traffic fits: the sinks below book what
// they receive here, keyed by the drain token the router writes in HOSTNAME.
type Books struct {
	mu    sync.Mutex
	books map[string]*Book
}

// Book is what one drain received.
type Book struct {
	App       string // the app whose lines this drain may carry
	seen      []uint64
	Delivered int   // distinct sequence numbers of App
	Repeats   int   // sequence numbers seen again (syslog resends a cut frame; HTTP: a new frame id)
	Announced int64 // sum of the L10 counts
	Foreign   int   // generated lines of another app: one app wrote into another's stream
	Other     int   // anything else
	// Latencies, when tracked (Track), are receive time − the line's timestamp.
	Latencies []time.Duration
	track     bool
}

// NewBooks returns empty books.
func NewBooks() *Books { return &Books{books: map[string]*Book{}} }

// Open registers drain token tok as carrying app's lines.
func (b *Books) Open(tok, app string) {
	b.mu.Lock()
	b.books[tok] = &Book{App: app}
	b.mu.Unlock()
}

// Track makes tok's book record each line's latency from its timestamp.
func (b *Books) Track(tok string) {
	b.mu.Lock()
	if bk := b.books[tok]; bk != nil {
		bk.track = true
	}
	b.mu.Unlock()
}

// Get returns a copy of tok's book (the zero Book when unknown).
func (b *Books) Get(tok string) Book {
	b.mu.Lock()
	defer b.mu.Unlock()
	if bk := b.books[tok]; bk != nil {
		c := *bk
		c.seen = nil
		c.Latencies = slices.Clone(bk.Latencies)
		return c
	}
	return Book{}
}

// Missing counts the sequence numbers in [from, to) that tok's drain did not get.
func (b *Books) Missing(tok string, from, to int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.books[tok]
	n := 0
	for seq := from; seq < to; seq++ {
		if bk == nil || seq/64 >= len(bk.seen) || bk.seen[seq/64]&(1<<(seq%64)) == 0 {
			n++
		}
	}
	return n
}

// Unknown is the book of messages whose HOSTNAME is no registered drain token.
const Unknown = "?"

// record books one message received for drain host.
func (b *Books) record(m *wire.Message) {
	host := m.Hostname
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.books[host]
	if bk == nil {
		bk = b.books[Unknown]
		if bk == nil {
			bk = &Book{App: Unknown}
			b.books[Unknown] = bk
		}
	}
	if bk.book(string(m.Text)) && bk.track && len(bk.Latencies) < 1<<22 {
		bk.Latencies = append(bk.Latencies, time.Since(m.Time))
	}
}

// book counts one text and reports whether it was a generated line of the app.
func (bk *Book) book(t string) bool {
	var n int64
	if _, err := fmt.Sscanf(t, "Error L10 (output buffer overflow): %d messages dropped", &n); err == nil {
		bk.Announced += n
		return false
	}
	app, seq, ok := ParseLine(t)
	switch {
	case !ok || seq < 0:
		bk.Other++
		return false
	case app != bk.App:
		bk.Foreign++
		return false
	default:
		w := seq / 64
		for len(bk.seen) <= w {
			bk.seen = append(bk.seen, 0)
		}
		if bk.seen[w]&(1<<(seq%64)) != 0 {
			bk.Repeats++
			return false
		}
		bk.seen[w] |= 1 << (seq % 64)
		bk.Delivered++
		return true
	}
}

// Percentile returns the p-th percentile (0–100) of ds.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// Balance is sent − delivered − announced: 0 when every line is accounted for,
// positive for lines lost without a word, negative when more was announced than lost.
func (bk Book) Balance(sent int) int { return sent - bk.Delivered - int(bk.Announced) }

// CountingSyslog is a syslog (or, with a TLS config, syslog+TLS) receiver that books
// every frame by its HOSTNAME.
type CountingSyslog struct {
	Addr  string
	ln    net.Listener
	books *Books
	bad   atomic.Int64
	wg    sync.WaitGroup
}

// NewCountingSyslog listens on 127.0.0.1:0.
func NewCountingSyslog(books *Books, tlsCfg *tls.Config) (*CountingSyslog, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &CountingSyslog{Addr: ln.Addr().String(), ln: ln, books: books}
	s.wg.Go(s.serve)
	return s, nil
}

// Bad is how many frames did not parse.
func (s *CountingSyslog) Bad() int64 { return s.bad.Load() }

// Close stops accepting; open connections end when the router closes them.
func (s *CountingSyslog) Close() { _ = s.ln.Close() }

func (s *CountingSyslog) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.read(c)
	}
}

func (s *CountingSyslog) read(c net.Conn) {
	defer func() { _ = c.Close() }()
	fr := wire.NewFrameReader(c, 64<<10)
	for {
		rec, err := fr.Next()
		if err != nil {
			return
		}
		m, err := wire.Parse(rec)
		if err != nil {
			s.bad.Add(1)
			continue
		}
		s.books.record(&m)
	}
}

// HTTPFault is what a CountingHTTP answers while it is set.
type HTTPFault struct {
	Code       int  // 0: 200
	RetryAfter int  // seconds, sent with the code when > 0
	HangUp     bool // read the batch, then close the connection without an answer
}

// CountingHTTP is a logplex-1 receiver that books the batches it answers 2xx, each
// frame id once (a retry of a batch it already took is not a second delivery).
type CountingHTTP struct {
	URL   string
	srv   *httptest.Server
	books *Books
	fault atomic.Pointer[HTTPFault]
	mu    sync.Mutex
	taken map[string]bool
	posts atomic.Int64
}

// NewCountingHTTP starts the receiver on 127.0.0.1 (HTTPS with cert).
func NewCountingHTTP(books *Books, cert *tls.Certificate) *CountingHTTP {
	s := &CountingHTTP{books: books, taken: map[string]bool{}}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if cert != nil {
		s.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	return s
}

// Set makes the receiver answer f from now on (nil: 200).
func (s *CountingHTTP) Set(f *HTTPFault) { s.fault.Store(f) }

// Posts is how many requests arrived.
func (s *CountingHTTP) Posts() int64 { return s.posts.Load() }

// Close stops the receiver.
func (s *CountingHTTP) Close() { s.srv.Close() }

func (s *CountingHTTP) serve(w http.ResponseWriter, r *http.Request) {
	s.posts.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	f := s.fault.Load()
	if f != nil && f.HangUp {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
	}
	if f != nil && f.Code != 0 && f.Code/100 != 2 {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		w.WriteHeader(f.Code)
		return
	}
	id := r.Header.Get(wire.HeaderFrameID)
	s.mu.Lock()
	retry := s.taken[id]
	s.taken[id] = true
	s.mu.Unlock()
	if !retry {
		_, _ = wire.SplitFrames(body, 64<<10, func(rec []byte) error {
			if m, err := wire.Parse(rec); err == nil {
				s.books.record(&m)
			}
			return nil
		})
	}
	w.WriteHeader(http.StatusOK)
}
