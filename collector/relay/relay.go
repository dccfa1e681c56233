// Package relay carries records from the wrapper (collector run, inside the worker's
// container) to the sidecar over a unix stream socket in the pod's shared volume.
//
// Protocol: the wrapper connects and writes RFC 6587 octet-counted frames, each a
// complete RFC 5424 record ("<len> <pri>1 TIME HOST SOURCE PROC - - TEXT"), and never
// reads. There is no handshake and no acknowledgement: the socket is local, and the
// wrapper's rule is never to block the worker, so it buffers in a bounded queue, drops
// the oldest when the sidecar is slow or absent, and writes its own L12/L13 notices
// into the stream, which the sidecar forwards with their counts intact.
//
// Trust: process events (source kubeplex) are believed only from the socket's first
// connection, for as long as it stays open. The wrapper connects before it starts the
// worker (Connect) and keeps that connection for the container's life, and in a pod
// each container has a socket of its own (its state directory), so the worker, or
// another container, can open a connection of its own but never the trusted one: its
// kubeplex records are filed as app and its loss notices carry no counts.
package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// BatchSize bounds the records of one write.
const BatchSize = 500

// Client drains a queue into the sidecar's socket.
type Client struct {
	Path     string
	Queue    *queue.Queue
	Hostname string
	Proc     string
	Log      *slog.Logger
	// WriteTimeout bounds one write to a live socket: a sidecar that stops reading is
	// treated as gone [10s].
	WriteTimeout time.Duration

	mu   sync.Mutex
	conn net.Conn
	buf  []byte
	es   []queue.Entry
}

// Run writes batches until ctx ends.
func (c *Client) Run(ctx context.Context) {
	bo := backoff.New(50*time.Millisecond, 2*time.Second)
	for {
		for c.Queue.Len() == 0 && c.Queue.PeekLoss().Zero() {
			select {
			case <-c.Queue.Ready():
			case <-ctx.Done():
				return
			}
		}
		if err := c.send(time.Now().Add(c.writeTimeout())); err != nil {
			c.log().Debug("write to sidecar", "error", err)
			if !bo.Wait(ctx) {
				return
			}
			continue
		}
		bo.Reset()
	}
}

// Flush writes what is queued until the queue is empty or ctx ends, and returns how
// many lines were left undelivered.
func (c *Client) Flush(ctx context.Context) int {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.writeTimeout())
	}
	for ctx.Err() == nil && (c.Queue.Len() > 0 || !c.Queue.PeekLoss().Zero()) {
		if err := c.send(deadline); err != nil {
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
	c.mu.Lock()
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
	c.mu.Unlock()
	l := c.Queue.PeekLoss()
	return c.Queue.Len() + l.Dropped + l.Lost
}

func (c *Client) writeTimeout() time.Duration {
	if c.WriteTimeout > 0 {
		return c.WriteTimeout
	}
	return 10 * time.Second
}

func (c *Client) log() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// Connect connects to the sidecar now, retrying until ctx ends, so that the wrapper
// holds the socket's trusted connection before the worker starts.
func (c *Client) Connect(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.conn != nil {
			c.mu.Unlock()
			return nil
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", c.Path)
		if err == nil {
			c.conn = conn
		}
		c.mu.Unlock()
		if err == nil {
			return nil
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("connect to sidecar: %w", err)
		}
	}
}

// send connects if needed and writes one batch. Entries are taken from the queue only
// once connected, so while the sidecar is away they stay queued (and the oldest are
// dropped and counted when the queue is full). A failed write counts its batch lost.
func (c *Client) send(deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		d := net.Dialer{Timeout: time.Until(deadline)}
		conn, err := d.Dial("unix", c.Path)
		if err != nil {
			return fmt.Errorf("connect to sidecar: %w", err)
		}
		c.conn = conn
	}
	loss := c.Queue.TakeLoss()
	c.buf = c.buf[:0]
	p := queue.Producer{Hostname: c.Hostname, Proc: c.Proc}
	now := time.Now()
	if loss.Dropped > 0 {
		c.buf = wire.AppendFrame(c.buf, p.Record(queue.SourcePlatform, wire.PriorityError, now,
			queue.AppendNotice(nil, true, loss.Dropped, loss.DroppedSince)))
	}
	if loss.Lost > 0 {
		c.buf = wire.AppendFrame(c.buf, p.Record(queue.SourcePlatform, wire.PriorityError, now,
			queue.AppendNotice(nil, false, loss.Lost, loss.LostSince)))
	}
	c.es = c.Queue.Take(c.es[:0], BatchSize)
	for i := range c.es {
		c.buf = wire.AppendFrame(c.buf, c.es[i].Record)
	}
	_ = c.conn.SetWriteDeadline(deadline)
	_, err := c.conn.Write(c.buf)
	if err != nil {
		_ = c.conn.Close()
		c.conn = nil
		// Part of the batch may have arrived; count all of it: the loss is announced,
		// never hidden (at worst a few lines are both delivered and counted).
		c.Queue.LoseEntries(c.es, now)
		if !loss.Zero() {
			c.Queue.AddLoss(loss)
		}
		clear(c.es)
		return fmt.Errorf("write to sidecar: %w", err)
	}
	c.Queue.Commit(c.es)
	clear(c.es)
	return nil
}

// Server accepts wrappers on a unix socket and pushes their records into a queue.
type Server struct {
	Queue *queue.Queue
	Log   *slog.Logger

	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	owner net.Conn // the trusted connection, nil when none is open
	wg    sync.WaitGroup
}

// Listen removes a stale socket file left by a previous sidecar and listens on path.
func (s *Server) Listen(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on socket: %w", err)
	}
	// The worker may run as another user than the sidecar.
	_ = os.Chmod(path, 0o666)
	s.ln = ln
	s.conns = map[net.Conn]struct{}{}
	return nil
}

// Serve accepts connections until Close.
func (s *Server) Serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[conn] = struct{}{}
		trusted := s.owner == nil
		if trusted {
			s.owner = conn
		}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(conn, trusted)
	}
}

func (s *Server) read(conn net.Conn, trusted bool) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		if s.owner == conn {
			s.owner = nil
		}
		s.mu.Unlock()
		_ = conn.Close()
	}()
	warned := false
	fr := wire.NewFrameReader(conn, wire.DefaultMaxFrame)
	for {
		rec, err := fr.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.log().Warn("read from wrapper", "error", err)
			}
			return
		}
		f, err := wire.Scan(rec)
		if err != nil {
			s.log().Warn("malformed record from wrapper", "error", err)
			continue
		}
		e := queue.Entry{Record: append([]byte(nil), rec...)}
		if string(f.AppName) == queue.SourcePlatform {
			if !trusted {
				if !warned {
					s.log().Warn("process events from a connection other than the wrapper's are filed as app")
					warned = true
				}
				e.Record = Refile(rec, &f, queue.SourceApp)
			} else if n, since, ok := queue.ParseNotice(f.Text); ok {
				e.Carried, e.Since = n, since
			}
		}
		// Never push back on a wrapper: the sidecar's queue drops its oldest instead,
		// and counts a dropped notice as the messages it announced.
		s.Queue.Push(e)
	}
}

// Refile returns a copy of rec with APP-NAME replaced by source. f must be rec's
// fields as wire.Scan returned them (sub-slices of rec).
func Refile(rec []byte, f *wire.Fields, source string) []byte {
	start := cap(rec) - cap(f.AppName)
	end := start + len(f.AppName)
	out := make([]byte, 0, len(rec)-len(f.AppName)+len(source))
	out = append(out, rec[:start]...)
	out = append(out, source...)
	return append(out, rec[end:]...)
}

// Close stops accepting, gives connected wrappers until ctx ends to finish writing,
// then closes them.
func (s *Server) Close(ctx context.Context) {
	if s.ln == nil {
		return
	}
	_ = s.ln.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	<-done
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}
