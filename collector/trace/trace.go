// Package trace serves the collector's localhost endpoints for an app's trace output:
// syslog over UDP and TCP (RFC 5424 or RFC 3164 messages; octet-counted or
// newline-framed on TCP as RFC 6587 allows), HTTP POST /trace (plain text lines or
// a logplex-1 body) and OTLP/HTTP logs (POST /v1/logs, the OpenTelemetry SDKs'
// default endpoint on 4318). Whatever arrives becomes lines of source app; RFC 5424
// STRUCTURED-DATA and OTLP attributes ride along as the line's SD.
package trace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector/lines"
	"github.com/kubeplex/kubeplex/internal/otlpin"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// Options configure the listeners. Empty addresses leave a listener off.
type Options struct {
	// SyslogAddr is where syslog is served on both UDP and TCP.
	SyslogAddr string
	HTTPAddr   string
	// OTLPAddr serves OTLP/HTTP logs. Unlike the others, failing to bind it (another
	// container of the pod holds 4318) leaves only it off: see OTLPError.
	OTLPAddr string
	// Line receives each message, already cut at the 10,000-byte limit, with its
	// STRUCTURED-DATA (valid SD, or empty). It must not block (it is the collector's
	// drop-oldest queue).
	Line func(pri uint8, t time.Time, sd, text []byte)
	Log  *slog.Logger
}

// MaxMessage bounds one syslog message or HTTP body line before splitting.
const MaxMessage = 64 * 1024

// maxBody bounds one POST /trace body.
const maxBody = 4 << 20

// Server is the set of running listeners.
type Server struct {
	opts Options
	udp  net.PacketConn
	tcp  net.Listener
	http net.Listener
	srv  *http.Server
	otlp net.Listener
	// otlpErr is why OTLPAddr is not served.
	otlpErr error
	otlpSrv *http.Server
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Listen binds the listeners. Only loopback addresses are accepted: these endpoints
// carry no authentication, and on a pod's loopback only the pod's own containers can
// reach them.
func Listen(opts Options) (*Server, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &Server{opts: opts, conns: map[net.Conn]struct{}{}}
	var err error
	if opts.SyslogAddr != "" {
		if err := loopbackOnly(opts.SyslogAddr); err != nil {
			return nil, err
		}
		if s.udp, s.tcp, err = listenSyslog(opts.SyslogAddr); err != nil {
			return nil, err
		}
	}
	if opts.HTTPAddr != "" {
		if err := loopbackOnly(opts.HTTPAddr); err != nil {
			s.Close()
			return nil, err
		}
		if s.http, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
			s.Close()
			return nil, fmt.Errorf("listen trace http: %w", err)
		}
	}
	if opts.OTLPAddr != "" {
		if err := loopbackOnly(opts.OTLPAddr); err != nil {
			s.Close()
			return nil, err
		}
		if s.otlp, err = net.Listen("tcp", opts.OTLPAddr); err != nil {
			s.otlp = nil
			s.otlpErr = fmt.Errorf("listen OTLP/HTTP logs on %s: %w", opts.OTLPAddr, err)
			if errors.Is(err, syscall.EADDRINUSE) {
				s.otlpErr = fmt.Errorf("OTLP/HTTP logs input off: %s is already taken by another process of the pod "+
					"(an OpenTelemetry Collector sidecar?); set KUBEPLEX_TRACE_OTLP_ADDR to another loopback address, "+
					"or to \"\" to turn the input off", opts.OTLPAddr)
			}
		}
	}
	return s, nil
}

// OTLPError says why the OTLP/HTTP endpoint is not served, or nil.
func (s *Server) OTLPError() error { return s.otlpErr }

// OTLPAddr returns the bound OTLP/HTTP address, or "".
func (s *Server) OTLPAddr() string {
	if s.otlp == nil {
		return ""
	}
	return s.otlp.Addr().String()
}

// listenSyslog binds UDP and TCP on the same port, as syslog daemons do. With port 0
// the kernel picks the UDP port, which TCP may already use (a busy host has many
// outgoing TCP connections): then it picks again, a bounded number of times.
func listenSyslog(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("parse trace address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 20
	}
	for i := 1; ; i++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen syslog udp: %w", err)
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close() // never served
		if i >= tries || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("listen syslog tcp: %w", err)
		}
	}
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("parse trace address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("trace address %q: only loopback addresses are allowed", addr)
}

// SyslogAddr returns the bound syslog address (UDP and TCP), or "".
func (s *Server) SyslogAddr() string {
	if s.udp == nil {
		return ""
	}
	return s.udp.LocalAddr().String()
}

// HTTPAddr returns the bound HTTP address, or "".
func (s *Server) HTTPAddr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr().String()
}

// Serve starts serving in the background.
func (s *Server) Serve() {
	if s.udp != nil {
		s.wg.Add(2)
		go s.serveUDP()
		go s.serveTCP()
	}
	if s.http != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("POST /trace", s.handleHTTP)
		s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = s.srv.Serve(s.http) }()
	}
	if s.otlp != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("POST "+otlpin.Path, s.handleOTLP)
		s.otlpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = s.otlpSrv.Serve(s.otlp) }()
	}
}

// Close stops every listener and open connection and waits for the handlers.
func (s *Server) Close() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.tcp != nil {
		_ = s.tcp.Close()
	}
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.srv.Shutdown(ctx)
		cancel()
	} else if s.http != nil {
		_ = s.http.Close()
	}
	if s.otlpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.otlpSrv.Shutdown(ctx)
		cancel()
	} else if s.otlp != nil {
		_ = s.otlp.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, MaxMessage)
	for {
		n, _, err := s.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.syslogMessage(bytes.TrimRight(buf[:n], "\r\n\x00"))
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		conn, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				_ = conn.Close()
			}()
			fr := wire.NewFrameReader(conn, MaxMessage)
			fr.AllowNewline = true
			for {
				rec, err := fr.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
						s.opts.Log.Debug("read syslog tcp", "error", err)
					}
					return
				}
				s.syslogMessage(rec)
			}
		}()
	}
}

// syslogMessage decodes one message: RFC 5424 when it says version 1, else RFC 3164,
// else (no PRI at all) the whole text at user.notice, as RFC 3164 4.3.3 tells a relay.
func (s *Server) syslogMessage(b []byte) {
	if len(b) == 0 {
		return
	}
	now := time.Now()
	if f, err := wire.Scan(b); err == nil {
		s.emit(f.Priority, stamp(f.Timestamp, now), f.StructuredData, f.Text)
		return
	}
	if m, err := wire.ParseRFC3164(b, now, time.Local); err == nil {
		// The sender's clock has no year and no zone: the receive time is better.
		s.emit(m.Priority, now, nil, m.Content)
		return
	}
	s.emit(13, now, nil, b)
}

// stamp is an RFC 5424 TIMESTAMP as a time, or now when there is none or it does not
// parse.
func stamp(ts []byte, now time.Time) time.Time {
	if us, err := wire.ParseTimestamp(ts); err == nil {
		return time.UnixMicro(us).UTC()
	}
	return now
}

// emit passes text on, cut into Logplex-sized messages, each with the SD.
func (s *Server) emit(pri uint8, t time.Time, sd, text []byte) {
	sd = wire.ClipSD(sd, otlpin.MaxAttrs) // as the router would
	for {
		at := lines.Cut(text, lines.MaxLine)
		s.opts.Line(pri, t, sd, text[:at])
		text = text[at:]
		if len(text) == 0 {
			return
		}
	}
}

// handleHTTP takes a body whole or not at all: one over maxBody is refused with 413
// and none of its lines reach the stream (a refusal that had already passed on the
// first 4 MiB would leave the sender unable to tell what to send again).
func (s *Server) handleHTTP(w http.ResponseWriter, req *http.Request) {
	req.Body = http.MaxBytesReader(w, req.Body, maxBody)
	ct := req.Header.Get("Content-Type")
	if strings.HasPrefix(ct, wire.ContentType) || strings.HasPrefix(ct, wire.ContentTypeLegacy) {
		b, err := wire.ReadBatch(req, maxBody, MaxMessage, nil)
		if err != nil {
			reason, code := wire.ReasonMalformed, http.StatusBadRequest
			var be *wire.BatchError
			if errors.As(err, &be) {
				reason = be.Reason
			}
			if reason == wire.ReasonTooLarge || reason == wire.ReasonFrameTooLarge {
				code = http.StatusRequestEntityTooLarge
			}
			http.Error(w, reason, code)
			return
		}
		now := time.Now()
		for _, rec := range b.Records {
			f, _ := wire.Scan(rec) // ReadBatch has checked every record
			s.emit(f.Priority, stamp(f.Timestamp, now), f.StructuredData, f.Text)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// Plain text: one message per line, as a worker's stdout. Read it all first.
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, wire.ReasonTooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	now := time.Now()
	sp := lines.Splitter{Emit: func(line []byte) { s.opts.Line(wire.PriorityInfo, now, nil, line) }}
	_, _ = sp.Write(body) // a Splitter takes every byte
	sp.Flush()
	w.WriteHeader(http.StatusNoContent)
}

// handleOTLP takes an OTLP/HTTP logs export. Every record that decodes is queued (the
// queue drops oldest and announces it as L12, as for any line); a record whose body is
// over MaxMessage is refused as a partial success, as a syslog message that long is.
func (s *Server) handleOTLP(w http.ResponseWriter, req *http.Request) {
	_, err := otlpin.Handle(w, req, otlpin.Limits{MaxBody: maxBody, MaxText: MaxMessage}, time.Now(), func(r *otlpin.Record) bool {
		s.emit(r.Priority, r.Time, r.SD, r.Text)
		return true
	})
	if err != nil {
		s.opts.Log.Debug("OTLP/HTTP logs request refused", "error", err)
	}
}
