// Package syslog delivers to syslog:// (TCP) and syslog+tls:// drains: RFC 6587
// octet-counted RFC 5424 frames with the drain token in HOSTNAME, as Logplex sends.
package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/router/drain"
)

// Options tune a syslog drain; zero values take the defaults in brackets.
type Options struct {
	// MinBackoff and MaxBackoff bound the jittered reconnect waits [500 ms, 300 s
	// (Logplex)].
	MinBackoff, MaxBackoff time.Duration
	// LogEvery is the least time between two log lines of one failure streak [1 min].
	LogEvery time.Duration
	// WriteTimeout is how long a write may make no progress at all (the receiver
	// took no byte) before the drain reports the connection stalled [5 s]. A slow
	// receiver that keeps reading is not stalled, however long a batch takes.
	WriteTimeout time.Duration
	// StallClose is how long without progress a stalled connection is kept before it
	// is replaced [60 s]. Until then it is only reported: a receiver reading slowly
	// reopens its TCP window only once it has read a good part of its buffer (on
	// loopback, 64 KiB), which at a few KiB a second is tens of seconds without
	// progress, and replacing the connection would lose what its kernel holds.
	StallClose time.Duration
	// NotSentLowat bounds the bytes queued in the kernel and not yet sent on a
	// connection (TCP_NOTSENT_LOWAT) [256 KiB]: a receiver that stops reading is
	// noticed once its own buffers are full, not after megabytes more (Linux grows
	// the send buffer to 4 MiB), and what a stalled connection still holds stays
	// small (docs/drains.md). 32 KiB cost the one-connection block-write benchmark
	// about a fifth of its throughput on a loaded machine; 256 KiB did not.
	NotSentLowat int
	// IdleTimeout closes a connection unused this long [4 min].
	IdleTimeout time.Duration
	// MaxAge recycles connections older than this [5 h, as Logplex].
	MaxAge time.Duration
}

func (o *Options) defaults() {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 300 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.StallClose <= 0 {
		o.StallClose = 60 * time.Second
	}
	if o.NotSentLowat <= 0 {
		o.NotSentLowat = 256 << 10
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 4 * time.Minute
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * time.Hour
	}
}

// Sink is one syslog drain. Deliver is called by one runner goroutine at a time.
type Sink struct {
	cfg  *drain.Config
	env  drain.Env
	opts Options
	addr string
	tls  *tls.Config // nil for plain TCP

	conn net.Conn
	raw  syscall.RawConn // conn's socket for TryWrite; nil for TLS
	sock syscall.RawConn // conn's TCP socket, TLS or not (socket options, SIOCOUTQ)
	// deadline: conn has a write deadline set (by Deliver) that TryWrite must clear,
	// since it does not renew it and an expired one would refuse every write.
	deadline bool
	dead     *atomic.Bool // set by the connection's reader when the peer hangs up
	born     time.Time
	lastUse  time.Time
	backoff  *backoff.Backoff
	failLog  drain.FailureLog
	// l14 announces certificate failures once per failure streak.
	l14 drain.CertNotice
	// tryOut, tryN and tryFn are TryWrite's write(2) on the raw connection: one
	// function value made once, so that a write allocates nothing (a closure made
	// per call would escape to the heap, twice per batch).
	tryOut []byte
	tryN   int
	tryFn  func(fd uintptr) bool
	// Earlier batches on a plain TCP connection, for a replacement to count exactly
	// what they lose: pos is the bytes written on the connection, ends the offsets
	// where frames of batches already reported delivered end, kept until SIOCOUTQ
	// shows them acknowledged (trimmed every trimEvery bytes), and notices those of
	// them that were L10 notices, with their counts.
	pos     int64
	ends    []int64
	notices []noticeEnd
	trimmed int64
}

type noticeEnd struct{ end, count int64 }

// trimEvery is how many bytes a connection writes between two looks at what its
// kernel still holds (one ioctl), to forget the frames acknowledged meanwhile.
const trimEvery = 256 << 10

var (
	_ drain.Drain      = (*Sink)(nil)
	_ drain.Immediate  = (*Sink)(nil)
	_ drain.IdleCloser = (*Sink)(nil)
)

// New returns a drain for cfg (scheme syslog or syslog+tls).
func New(cfg *drain.Config, env drain.Env, opts Options) (*Sink, error) {
	opts.defaults()
	s := &Sink{cfg: cfg, env: env, opts: opts, backoff: backoff.New(opts.MinBackoff, opts.MaxBackoff),
		failLog: drain.FailureLog{Every: opts.LogEvery}}
	s.tryFn = func(fd uintptr) bool {
		// RawSyscall: a write to a non-blocking socket never blocks, and the
		// runtime's syscall entry would wake its monitor thread at light load
		// (see router/ingest/rawsock.go).
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&s.tryOut[0])), uintptr(len(s.tryOut)))
		s.tryN = int(n)
		if errno != 0 {
			s.tryN = 0
		}
		return true // never wait for the socket to become writable
	}
	host, port := cfg.URL.Hostname(), cfg.URL.Port()
	if host == "" || port == "" {
		return nil, fmt.Errorf("new syslog drain %s: URL needs host and port", cfg.ID)
	}
	s.addr = net.JoinHostPort(host, port)
	switch cfg.URL.Scheme {
	case "syslog":
	case "syslog+tls":
		tc, err := TLSConfig(cfg, host)
		if err != nil {
			return nil, fmt.Errorf("new syslog drain %s: %w", cfg.ID, err)
		}
		s.tls = tc
	default:
		return nil, fmt.Errorf("new syslog drain %s: unsupported scheme %q", cfg.ID, cfg.URL.Scheme)
	}
	return s, nil
}

// TLSConfig verifies against the drain's CA bundle when it has one, else the system
// roots, unless the drain explicitly opts out of verification.
func TLSConfig(cfg *drain.Config, host string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if t := cfg.TLS; t != nil {
		if t.ServerName != "" {
			tc.ServerName = t.ServerName
		}
		tc.InsecureSkipVerify = t.InsecureSkipVerify //nolint:gosec // explicit per-drain opt-out, as Logplex allowed
		if t.CAPEM != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(t.CAPEM)) {
				return nil, errors.New("parse drain CA bundle: no certificates")
			}
			tc.RootCAs = pool
		}
	}
	return tc, nil
}

// Limits: big batches; one batch is one write, so the frames go out as soon as the
// queue is empty rather than on a timer.
func (s *Sink) Limits() drain.Limits {
	return drain.Limits{Messages: 4096, Bytes: 256 << 10}
}

// Deliver writes b's frames, reconnecting with capped exponential backoff until they
// are all written or ctx ends. Frames cut by a failed write are sent again on the
// next connection; the receiver discards the partial frame with the old connection.
//
// A write that makes no progress for WriteTimeout is reported as stalled; after
// StallClose the connection is replaced.
// On a plain TCP connection the frames of b the receiver never acknowledged are
// then sent again too (the stalled connection is reset, so the kernel does not
// deliver them later as well); only what earlier batches left unacknowledged in the
// kernel (at most about NotSentLowat, plus what was in flight) is lost with it. So
// is what the receiver's kernel took and its reader never read; when that included
// the batch's L10 notice, the notice is sent again first on the next connection, so
// that a receiver that stopped reading does not take the drop count with it.
func (s *Sink) Deliver(ctx context.Context, b *drain.Batch) (int, error) {
	out := b.Bytes()
	written, sent := b.Written, 0 // bytes and whole frames confirmed written
	for sent < b.Len() && b.End(sent) <= written {
		sent++
	}
	var lastErr error
	from := 0              // where b's bytes on the current connection start
	var again []byte       // b's L10 notice, to write first on the next connection
	carried := true        // the current connection took b's first frame (its notice)
	var progress time.Time // the current connection's last progress
	// attempted: some byte of b was given to a connection; until then, a Deliver
	// that ends with ctx has sent nothing (drain.ErrUnsent).
	attempted := b.Written > 0
	for {
		if s.conn != nil && s.dead.Load() {
			// The receiver hung up: what it never acknowledged is lost with the
			// connection (counted, and this batch's share sent again).
			sent = s.lostOnClose(b, written, from, sent)
		}
		had := s.conn
		if err := s.ensureConn(ctx); err != nil {
			if ctx.Err() == nil {
				lastErr = err
				s.fail(err)
			}
			if ctx.Err() != nil || !s.sleep(ctx) {
				if !attempted {
					return sent, errors.Join(drain.ErrUnsent, ctx.Err(), lastErr)
				}
				return sent, errors.Join(ctx.Err(), lastErr)
			}
			continue
		}
		if s.conn != had {
			// A new connection starts at a frame: one cut on the old connection (by
			// a partial TryWrite before it died) is sent again whole.
			written = b.Start(sent)
			from, carried = written, written == 0
		}
		if s.conn != had || progress.IsZero() {
			progress = time.Now()
		}
		var n int
		var err error
		attempted = true
		if again != nil {
			if _, err = s.write(again); err == nil {
				again, carried = nil, true
			}
		}
		if err == nil {
			n, err = s.write(out[written:])
		}
		written += n
		for sent < b.Len() && b.End(sent) <= written {
			sent++
		}
		if err == nil {
			s.wrote(b, from)
			s.lastUse = time.Now()
			s.backoff.Reset()
			s.l14.Succeeded()
			s.failLog.Succeeded(s.log(), "syslog drain delivering again")
			return sent, nil
		}
		stalled := errors.Is(err, os.ErrDeadlineExceeded)
		if stalled && s.tls == nil {
			now := time.Now()
			switch {
			case ctx.Err() != nil:
				return sent, errors.Join(ctx.Err(), err)
			case n > 0:
				// The receiver is slow, not gone: it took something within the timeout.
				s.lastUse, progress = now, now
				continue
			case now.Sub(progress) < s.opts.StallClose:
				s.fail(fmt.Errorf("write to syslog drain: no progress for %v: %w", s.opts.WriteTimeout, err))
				continue
			}
		}
		if stalled {
			sent, lastErr = s.replaceStalled(b, err, written, from, sent)
			if b.Notice && carried && sent > 0 {
				again = b.Frame(0)
			}
		} else {
			lastErr = fmt.Errorf("write to syslog drain: %w", err)
			sent = s.lostOnClose(b, written, from, sent)
			s.closeConn()
		}
		s.fail(lastErr)
		// Resend from the first frame not wholly written (or acknowledged).
		written = b.Start(sent)
		if !s.sleep(ctx) {
			return sent, errors.Join(ctx.Err(), lastErr)
		}
	}
}

// replaceStalled resets a connection that made no progress for StallClose and
// returns how many frames of b count as written: on plain TCP, the frames the
// receiver never acknowledged (SIOCOUTQ) are taken back, to be sent again.
func (s *Sink) replaceStalled(b *drain.Batch, err error, written, from, sent int) (int, error) {
	lastErr := fmt.Errorf("write to syslog drain: no progress for %v, connection replaced: %w", s.opts.StallClose, err)
	if s.raw != nil {
		if u := unacked(s.sock); u > 0 {
			acked := max(written-u, from)
			for sent > 0 && b.End(sent-1) > acked {
				sent--
			}
			// Frames of earlier batches ending past what the receiver acknowledged
			// are lost with the connection (a cut one too: the receiver drops it).
			msgs, notices := s.unackedEarlier(s.pos - int64(u))
			b.LostEarlier += msgs
			b.LostNotices += notices
			s.ends, s.notices = s.ends[:0], s.notices[:0]
			if msgs > 0 || notices > 0 {
				lastErr = fmt.Errorf("%w (%d messages of earlier batches unacknowledged, announced again)", lastErr, msgs)
			}
		}
	}
	s.resetConn()
	return sent, lastErr
}

// lostOnClose is for a plain TCP connection given up after the receiver hung up or
// a write failed: it counts into b the frames of earlier batches the receiver never
// acknowledged (tcpi_bytes_acked) and returns how many frames of b count as written
// (b's bytes from from up to written were the connection's last).
func (s *Sink) lostOnClose(b *drain.Batch, written, from, sent int) int {
	if s.raw == nil {
		return sent
	}
	acked := ackedBytes(s.sock)
	if acked < 0 {
		return sent
	}
	msgs, notices := s.unackedEarlier(acked)
	b.LostEarlier += msgs
	b.LostNotices += notices
	s.ends, s.notices = s.ends[:0], s.notices[:0]
	ab := max(written-int(s.pos-acked), from)
	was := sent
	for sent > 0 && b.End(sent-1) > ab {
		sent--
	}
	if msgs > 0 || notices > 0 || sent < was {
		s.fail(fmt.Errorf("syslog drain connection lost with %d bytes unacknowledged: "+
			"%d messages of earlier batches announced dropped, %d of this batch sent again", s.pos-acked, msgs, was-sent))
	}
	return sent
}

// wrote notes the frames of b, now wholly written, that went out on the current
// plain TCP connection (the bytes from its offset from on were its last writes),
// and forgets the ones its kernel no longer holds.
func (s *Sink) wrote(b *drain.Batch, from int) {
	if s.raw == nil {
		return
	}
	base := s.pos - int64(b.Size()) // the connection's offset of b's byte 0
	for i := range b.Len() {
		if b.Start(i) >= from {
			s.ends = append(s.ends, base+int64(b.End(i)))
		}
	}
	if b.Notice && from == 0 {
		s.notices = append(s.notices, noticeEnd{base + int64(b.End(0)), b.NoticeCount})
	}
	if s.pos-s.trimmed >= trimEvery {
		s.trimmed = s.pos
		if u := unacked(s.sock); u >= 0 {
			s.forget(s.pos - int64(u))
		}
	}
}

// forget drops the frames that end at or before acked.
func (s *Sink) forget(acked int64) {
	i := 0
	for i < len(s.ends) && s.ends[i] <= acked {
		i++
	}
	s.ends = s.ends[:copy(s.ends, s.ends[i:])]
	j := 0
	for j < len(s.notices) && s.notices[j].end <= acked {
		j++
	}
	s.notices = s.notices[:copy(s.notices, s.notices[j:])]
	if len(s.ends) == 0 && cap(s.ends) > 4096 {
		s.ends = nil // a backlog's worth, not kept for a healthy connection
	}
}

// unackedEarlier counts the frames of earlier batches that end after acked: the
// messages among them, and the counts of the L10 notices among them.
func (s *Sink) unackedEarlier(acked int64) (msgs int, notices int64) {
	for _, e := range s.ends {
		if e > acked {
			msgs++
		}
	}
	for _, n := range s.notices {
		if n.end > acked {
			msgs--
			notices += n.count
		}
	}
	return msgs, notices
}

// tlsPiece bounds one write on a TLS connection (one record's worth).
const tlsPiece = 16 << 10

// write writes p with a deadline WriteTimeout ahead. A TLS connection is unusable
// after a write timed out, so it is written a record's worth at a time, each with
// a deadline StallClose ahead, and a piece that takes longer than WriteTimeout is
// reported as stalled meanwhile.
func (s *Sink) write(p []byte) (int, error) {
	s.deadline = true
	if s.tls == nil {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		n, err := s.conn.Write(p)
		s.pos += int64(n)
		return n, err
	}
	n := 0
	for n < len(p) {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.opts.StallClose))
		t := time.AfterFunc(s.opts.WriteTimeout, func() {
			if s.env.Report != nil {
				s.env.Report(fmt.Errorf("write to syslog drain: no progress for %v: %w", s.opts.WriteTimeout, os.ErrDeadlineExceeded))
			}
		})
		m, err := s.conn.Write(p[n:min(len(p), n+tlsPiece)])
		t.Stop()
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TryWrite writes what the socket buffer takes at once with one non-blocking write(2)
// on a plain TCP connection that is up and not due for recycling. Errors are left
// to Deliver, which sees them again on its next write.
func (s *Sink) TryWrite(b *drain.Batch, from int) int {
	if s.raw == nil || s.dead.Load() || from >= b.Size() {
		return from
	}
	now := time.Now()
	if now.Sub(s.lastUse) > s.opts.IdleTimeout || now.Sub(s.born) > s.opts.MaxAge {
		return from // Deliver recycles the connection
	}
	if s.deadline {
		if s.conn.SetWriteDeadline(time.Time{}) != nil {
			return from
		}
		s.deadline = false
	}
	s.tryOut, s.tryN = b.Bytes()[from:], 0
	err := s.raw.Write(s.tryFn)
	n := s.tryN
	s.tryOut = nil
	if err != nil || n <= 0 {
		return from
	}
	s.lastUse = now
	s.pos += int64(n)
	if from+n == b.Size() {
		s.wrote(b, from)
	}
	return from + n
}

// fail reports a failed connection or write to the health report and, rate-limited,
// to the log (the error names the address, never the URL's userinfo).
func (s *Sink) fail(err error) {
	if s.env.Report != nil {
		s.env.Report(err)
	}
	s.failLog.Failed(s.log(), "syslog drain connection failed", "addr", s.addr, "err", err)
}

func (s *Sink) log() *slog.Logger {
	if s.env.Logger != nil {
		return s.env.Logger
	}
	return slog.Default()
}

func (s *Sink) sleep(ctx context.Context) bool {
	return s.backoff.Wait(ctx)
}

func (s *Sink) ensureConn(ctx context.Context) error {
	now := time.Now()
	if s.conn != nil && (s.dead.Load() || now.Sub(s.lastUse) > s.opts.IdleTimeout || now.Sub(s.born) > s.opts.MaxAge) {
		s.closeConn()
	}
	if s.conn != nil {
		return nil
	}
	c, err := s.env.Dialer.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	var raw, sock syscall.RawConn
	if tc, ok := c.(*net.TCPConn); ok {
		// Each write is a whole batch taken when the queue had something: Nagle would
		// only add latency (and delayed-ACK stalls) on top.
		_ = tc.SetNoDelay(true)
		if sock, err = tc.SyscallConn(); err == nil {
			setNotSentLowat(sock, s.opts.NotSentLowat)
		} else {
			sock = nil
		}
		if s.tls == nil {
			raw = sock
		}
	}
	if s.tls != nil {
		tlsc := tls.Client(c, s.tls)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tlsc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = c.Close()
			err = fmt.Errorf("tls handshake with syslog drain: %w", err)
			s.l14.Failed(s.env, err, s.cfg.URL.Scheme+"://"+s.addr+"/")
			return err
		}
		c = tlsc
	}
	dead := new(atomic.Bool)
	go watch(c, dead)
	s.conn, s.raw, s.sock, s.dead, s.born, s.lastUse, s.deadline = c, raw, sock, dead, now, now, false
	s.pos, s.ends, s.notices, s.trimmed = 0, s.ends[:0], s.notices[:0], 0
	return nil
}

// watch reads from the connection so a receiver's hang-up is noticed before the next
// batch is written into a dead socket. Syslog receivers send nothing; any byte or
// error ends the connection's life.
func watch(c net.Conn, dead *atomic.Bool) {
	var b [512]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			dead.Store(true)
			return
		}
	}
}

func (s *Sink) closeConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn, s.raw, s.sock = nil, nil, nil
	}
}

// resetConn closes a stalled connection with a reset, so that the kernel drops
// what it still holds for it instead of delivering it after the frames were sent
// again elsewhere.
func (s *Sink) resetConn() {
	if tc, ok := s.conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	} else if tlsc, ok := s.conn.(*tls.Conn); ok {
		if tc, ok := tlsc.NetConn().(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	s.closeConn()
}

// IdleIn reports the time until the open connection has been unused for
// IdleTimeout.
func (s *Sink) IdleIn(now time.Time) (time.Duration, bool) {
	if s.conn == nil {
		return 0, false
	}
	return s.opts.IdleTimeout - now.Sub(s.lastUse), true
}

// CloseIdle closes the connection; the next batch dials again.
func (s *Sink) CloseIdle() { s.closeConn() }

// Close closes the connection.
func (s *Sink) Close() error {
	s.closeConn()
	return nil
}
