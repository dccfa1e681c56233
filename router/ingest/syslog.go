package ingest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// DefaultReadTimeout closes syslog connections that send nothing for this long.
const DefaultReadTimeout = 5 * time.Minute

// Syslog serves syslog over TCP/TLS (RFC 6587: octet counting and LF framing) and
// UDP (RFC 5426: one message per datagram). A record reaches an app when its APP-NAME
// is an ingest token (the token's source applies), or when it is an access log for
// one of an app's hosts (load-balancer lines, lb.go).
type Syslog struct {
	// Coalesce is the longest wait for more input before a read (coalescer); 0 reads
	// at once. Set before serving.
	Coalesce time.Duration

	d           *dispatch.Dispatcher
	limits      Limits
	readTimeout time.Duration
	m           *metrics.Metrics
	log         *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewSyslog returns the syslog ingest.
func NewSyslog(d *dispatch.Dispatcher, limits Limits, readTimeout time.Duration, m *metrics.Metrics, log *slog.Logger) *Syslog {
	limits.defaults()
	if readTimeout <= 0 {
		readTimeout = DefaultReadTimeout
	}
	return &Syslog{Coalesce: DefaultCoalesce, d: d, limits: limits, readTimeout: readTimeout, m: m, log: log, conns: map[net.Conn]struct{}{}}
}

// ListenTLS listens for syslog over TLS (RFC 5425) with a certificate from files.
func ListenTLS(addr, certFile, keyFile string) (net.Listener, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load syslog tls certificate: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen syslog tls: %w", err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// ServeTCP accepts connections until ln is closed.
func (s *Syslog) ServeTCP(ln net.Listener, proto string) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept syslog %s: %w", proto, err)
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c, proto)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Shutdown closes open connections (listeners are closed by their owner) and waits
// until their last messages are published.
func (s *Syslog) Shutdown() {
	s.mu.Lock()
	for c := range s.conns {
		// Wake the reader; what was already read is still published.
		_ = c.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// connReader publishes the pending batch before every read that may block, so a
// message never waits in the router for the sender's next one, and renews the read
// deadline. It also keeps the time of the last read, which stamps messages without
// a timestamp: one clock read per read syscall instead of one per message. Before a
// read it may wait a little for more input (coalescer).
type connReader struct {
	c        net.Conn
	timeout  time.Duration
	flush    func() int // publishes the pending batch, returns its message count
	now      time.Time
	deadline time.Time
	co       coalescer
	got      int // bytes the last read returned, and the room it had
	room     int
}

func (r *connReader) Read(p []byte) (int, error) {
	msgs := r.flush()
	r.now = time.Now()
	r.co.before(r.now, msgs, r.got, r.room)
	// Renewing a deadline costs a timer update; do it when an eighth of the timeout
	// has passed rather than on every read.
	if r.deadline.Sub(r.now) < r.timeout-r.timeout/8 {
		r.deadline = r.now.Add(r.timeout)
		_ = r.c.SetReadDeadline(r.deadline)
	}
	var n int
	var err error
	if r.co.sock != nil {
		n, err = r.co.sock.read(p)
	} else {
		n, err = r.c.Read(p)
	}
	r.now = time.Now()
	r.got, r.room = n, len(p)
	return n, err
}

// rawConn returns c's socket when c is plain TCP, or nil. Not through TLS: a TLS
// record cut across segments is read by the TLS layer in reads of its own, which
// do not pass the coalescer and could wait on a raised low-water mark.
func rawConn(c net.Conn) syscall.RawConn {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// resolver maps records to apps for one connection or datagram, caching the last
// token so a producer that sends the same token in every record pays one hash.
type resolver struct {
	s       *Syslog
	lastTok []byte
	lastRt  *dispatch.Route
	line    []byte // the router-form text of the last load-balancer record
}

func (s *Syslog) newResolver() *resolver { return &resolver{s: s} }

var procRouter = []byte(message.ProcRouter)

// resolve returns the app, source and process for a record, or nil app and the
// reason it was refused. A record whose APP-NAME is an ingest token is the token's
// (its source, the sender's process); any other record is a load-balancer line
// (lb.go): filed only when it parses as an access log for one of an app's hosts,
// with its text re-written in the router form, as kubeplex[router].
func (r *resolver) resolve(f *wire.Fields) (*dispatch.App, []byte, []byte, string) {
	if len(f.AppName) > 2 && f.AppName[0] == 't' && f.AppName[1] == '.' {
		if r.lastRt == nil || !bytes.Equal(r.lastTok, f.AppName) {
			rt, ok := r.s.d.ByToken(string(f.AppName))
			if !ok {
				return nil, nil, nil, "unknown_app"
			}
			r.lastTok = append(r.lastTok[:0], f.AppName...)
			r.lastRt = rt
		}
		return r.lastRt.App, r.lastRt.Source, f.ProcID, ""
	}
	a, ok := parseAccessLog(f.Text)
	if !ok {
		return nil, nil, nil, "not_access_log"
	}
	app, ok := r.s.d.ByHost(a.host)
	if !ok {
		return nil, nil, nil, "unknown_host"
	}
	r.line = appendRouterLine(r.line[:0], &a)
	f.Text = r.line
	return app, platformSource, procRouter, ""
}

// vhost finds "vhost=NAME" or "host=NAME" (optionally quoted) in a log line, the
// field access-log formats name the virtual host with.
func vhost(text []byte) []byte {
	for _, key := range [][]byte{[]byte("vhost="), []byte("host=")} {
		i := bytes.Index(text, key)
		for i > 0 && text[i-1] != ' ' {
			j := bytes.Index(text[i+1:], key)
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			continue
		}
		v := text[i+len(key):]
		if len(v) > 0 && v[0] == '"' {
			v = v[1:]
			if k := bytes.IndexByte(v, '"'); k >= 0 {
				return v[:k]
			}
			return nil
		}
		if k := bytes.IndexAny(v, " \t"); k >= 0 {
			v = v[:k]
		}
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

func (s *Syslog) serveConn(c net.Conn, proto string) {
	// The peer is done or broken; a close error adds nothing the read loop has not seen.
	defer func() { _ = c.Close() }()
	var b batch
	n := 0
	// One counter lookup per connection, not one per read.
	ingested := s.m.IngestMessages.WithLabelValues(proto)
	flush := func() int {
		b.flush()
		k := n
		if n > 0 {
			ingested.Add(float64(n))
			n = 0
		}
		return k
	}
	cr := &connReader{c: c, timeout: s.readTimeout, flush: flush, co: coalescer{window: s.Coalesce}}
	cr.co.sock = newRawSock(rawConn(c))
	fr := wire.NewFrameReader(cr, s.limits.MaxFrame)
	fr.AllowNewline = true
	res := s.newResolver()
	for {
		rec, err := fr.Next()
		if err != nil {
			_ = flush()
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				reason := "framing"
				if errors.As(err, &ne) && ne.Timeout() {
					reason = "read_timeout"
				} else if errors.Is(err, wire.ErrFrameTooLarge) {
					reason = "frame_too_large"
				}
				s.m.IngestErrors.WithLabelValues(proto, reason).Inc()
				s.log.Debug("syslog connection ended", "protocol", proto, "remote", c.RemoteAddr().String(), "reason", reason)
			}
			return
		}
		n += s.accept(&b, res, rec, proto, cr.now)
	}
}

// accept files one record, returning the number of messages it became.
func (s *Syslog) accept(b *batch, res *resolver, rec []byte, proto string, now time.Time) int {
	f, err := wire.Scan(rec)
	if err != nil {
		f, err = scan3164(rec, now)
		if err != nil {
			s.m.IngestErrors.WithLabelValues(proto, "malformed").Inc()
			return 0
		}
	}
	app, src, proc, reason := res.resolve(&f)
	if app == nil {
		s.m.IngestErrors.WithLabelValues(proto, reason).Inc()
		return 0
	}
	return b.add(app, &f, src, proc, now, s.limits.MaxLine)
}

// ServeUDP reads datagrams until pc is closed. A datagram holds one record, or
// octet-counted frames when it starts with a digit.
func (s *Syslog) ServeUDP(pc net.PacketConn) error {
	buf := make([]byte, 64<<10)
	var b batch
	res := s.newResolver()
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read syslog udp: %w", err)
		}
		dg := bytes.TrimRight(buf[:n], "\r\n\x00")
		now := time.Now()
		count := 0
		if len(dg) > 0 && dg[0] >= '1' && dg[0] <= '9' {
			_, err = wire.SplitFrames(dg, s.limits.MaxFrame, func(rec []byte) error {
				count += s.accept(&b, res, rec, "udp", now)
				return nil
			})
			if err != nil {
				s.m.IngestErrors.WithLabelValues("udp", "framing").Inc()
			}
		} else if len(dg) > 0 {
			count += s.accept(&b, res, dg, "udp", now)
		}
		b.flush()
		s.m.IngestMessages.WithLabelValues("udp").Add(float64(count))
	}
}
