// Package routertest provides real network peers for router tests: a syslog TCP/TLS sink,
// an HTTP(S) logplex-1 receiver and a test CA. Everything listens on 127.0.0.1.
package routertest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	cond  *sync.Cond
	live  map[net.Conn]struct{}
}

// NewSyslogSink listens on 127.0.0.1; with tlsCfg it serves TLS.
func NewSyslogSink(t testing.TB, tlsCfg *tls.Config) *SyslogSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	s := &SyslogSink{ln: ln, Addr: ln.Addr().String(), live: map[net.Conn]struct{}{}}
	s.cond = sync.NewCond(&s.mu)
	go s.serve()
	t.Cleanup(s.Close)
	return s
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
		s.cond.Broadcast()
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

// Conns returns how many connections were accepted.
func (s *SyslogSink) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// WaitFor waits until at least n messages arrived or the timeout passes, and returns
// what arrived.
func (s *SyslogSink) WaitFor(t testing.TB, n int, timeout time.Duration) []wire.Message {
	t.Helper()
	return waitFor(t, n, timeout, func() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.msgs) }, s.Messages)
}

func waitFor(t testing.TB, n int, timeout time.Duration, count func() int, get func() []wire.Message) []wire.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for count() < n {
		if time.Now().After(deadline) {
			got := get()
			t.Fatalf("waited %s for %d messages, got %d: %s", timeout, n, len(got), summary(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return get()
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

// CA is a test certificate authority.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	PEM     []byte
	counter int64
}

// NewCA creates a CA valid for an hour.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubeplex test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), counter: 1}
}

// Server issues a server certificate for 127.0.0.1 and the given DNS names.
func (ca *CA) Server(t testing.TB, dns ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.counter++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.counter),
		Subject:      pkix.Name{CommonName: "kubeplex test server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// WriteFiles writes a certificate and key as PEM files in dir.
func WriteFiles(t testing.TB, dir string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// Process is a running router binary.
type Process struct {
	Cmd    *exec.Cmd
	out    *syncBuffer
	exited chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs bin with args; the process is killed at test cleanup if still running.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	p := &Process{Cmd: cmd, out: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("router output:\n%s", p.Output())
		}
	})
	return p
}

// Output returns what the process wrote so far.
func (p *Process) Output() string { return p.out.String() }

// Stop sends SIGTERM and waits up to timeout for the exit.
func (p *Process) Stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.exited
		return errors.New("router did not stop in time")
	}
}

// FreeAddr returns a free 127.0.0.1 TCP address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close() // drained; only the status matters
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready after %s (last: %v)", url, timeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
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

// ClosedAddr returns a 127.0.0.1 address nothing listens on (connections are refused).
func ClosedAddr(t testing.TB) string {
	return FreeAddr(t)
}

// NewSyslogSinkAt is NewSyslogSink on a given address.
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
	s.cond = sync.NewCond(&s.mu)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}
