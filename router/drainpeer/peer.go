// Package drainpeer provides the real peers a router's drains deliver to in tests: a
// syslog TCP/TLS sink, an HTTP(S) logplex-1 receiver, rsyslogd and a blackhole that
// never reads. Everything listens on 127.0.0.1. TLS certificates, free addresses and
// the router process come from internal/testenv.
package drainpeer

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// SyslogSink accepts syslog connections and records every frame it parses.
type SyslogSink struct {
	ln   net.Listener
	Addr string

	mu    sync.Mutex
	msgs  []wire.Message
	raw   [][]byte
	bad   int
	conns int
	live  map[net.Conn]struct{}
}

// NewSyslogSink listens on 127.0.0.1; with tlsCfg it serves TLS.
func NewSyslogSink(t testing.TB, tlsCfg *tls.Config) *SyslogSink {
	t.Helper()
	return NewSyslogSinkAt(t, "127.0.0.1:0", tlsCfg)
}

// Close stops the sink.
func (s *SyslogSink) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.live {
		_ = c.Close()
	}
	s.mu.Unlock()
}

// DropConnections closes every open connection (the receiver restarts).
func (s *SyslogSink) DropConnections() {
	s.mu.Lock()
	for c := range s.live {
		_ = c.Close()
	}
	s.mu.Unlock()
}

func (s *SyslogSink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.live[c] = struct{}{}
		s.mu.Unlock()
		go s.read(c)
	}
}

func (s *SyslogSink) read(c net.Conn) {
	defer func() {
		_ = c.Close()
		s.mu.Lock()
		delete(s.live, c)
		s.mu.Unlock()
	}()
	fr := wire.NewFrameReader(c, 64<<10)
	for {
		rec, err := fr.Next()
		if err != nil {
			return
		}
		m, perr := wire.Parse(rec)
		s.mu.Lock()
		if perr != nil {
			s.bad++
		} else {
			s.msgs = append(s.msgs, m)
			s.raw = append(s.raw, bytes.Clone(rec))
		}
		s.mu.Unlock()
	}
}

// Messages returns a copy of what was received.
func (s *SyslogSink) Messages() []wire.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.Message(nil), s.msgs...)
}

// Raw returns the raw records received.
func (s *SyslogSink) Raw() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.raw...)
}

// Bad returns the number of frames that did not parse.
func (s *SyslogSink) Bad() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bad
}

// WaitClosed waits until every connection was closed by the drain and read to its
// end: after it, nothing more can arrive but on a new connection.
func (s *SyslogSink) WaitClosed(t testing.TB) {
	t.Helper()
	testenv.Until(t, "syslog connections closed", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.live) == 0
	})
}

// Conns returns how many connections were accepted.
func (s *SyslogSink) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// WaitFor waits until at least n messages arrived (failing the test after
// testenv.WaitTimeout) and returns what arrived.
func (s *SyslogSink) WaitFor(t testing.TB, n int) []wire.Message {
	t.Helper()
	return waitFor(t, n, s.Messages)
}

func waitFor(t testing.TB, n int, get func() []wire.Message) []wire.Message {
	t.Helper()
	var got []wire.Message
	testenv.Eventually(t, fmt.Sprintf("%d messages", n), func() error {
		if got = get(); len(got) < n {
			return fmt.Errorf("got %d: %s", len(got), summary(got))
		}
		return nil
	})
	return got
}

func summary(ms []wire.Message) string {
	var b strings.Builder
	for i, m := range ms {
		if i == 5 {
			fmt.Fprintf(&b, " … (%d more)", len(ms)-5)
			break
		}
		fmt.Fprintf(&b, "[%s %s %s %q] ", m.Hostname, m.AppName, m.ProcID, m.Text)
	}
	return b.String()
}

// L10Count sums the N of every "Error L10" notice in ms and counts the other messages.
func L10Count(ms []wire.Message) (announced, other int) {
	for _, m := range ms {
		var n int
		if _, err := fmt.Sscanf(string(m.Text), "Error L10 (output buffer overflow): %d messages dropped", &n); err == nil {
			announced += n
			continue
		}
		other++
	}
	return announced, other
}

// Blackhole accepts TCP connections and never reads from them.
type Blackhole struct {
	ln    net.Listener
	Addr  string
	mu    sync.Mutex
	conns []net.Conn
}

// NewBlackhole listens on 127.0.0.1.
func NewBlackhole(t testing.TB) *Blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Blackhole{ln: ln, Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096) // fill up quickly
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
	})
	return b
}

// Conns returns how many connections were accepted.
func (b *Blackhole) Conns() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// NewSyslogSinkAt is NewSyslogSink on a given address (a receiver that comes back
// where a drain already dials).
func NewSyslogSinkAt(t testing.TB, addr string, tlsCfg *tls.Config) *SyslogSink {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &SyslogSink{ln: ln, Addr: ln.Addr().String(), live: map[net.Conn]struct{}{}}
	go s.serve()
	t.Cleanup(s.Close)
	return s
}
