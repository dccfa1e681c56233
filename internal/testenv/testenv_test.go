package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestEventuallyRetriesUntilNil(t *testing.T) {
	calls := 0
	Eventually(t, "third call", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("cond ran %d times, want 3", calls)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				if _, err := fmt.Fprintf(&b, "w%d-%d\n", w, i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			_ = b.String()
		}
	})
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Errorf("%d lines, want 400", n)
	}
}

func TestFreePortIsFree(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("listen on the free port %d: %v", port, err)
	}
	_ = l.Close() // nothing was accepted
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "config", "crd", "bases")); err != nil {
		t.Errorf("root %s has no CRDs: %v", root, err)
	}
}

func TestStartCapturesOutput(t *testing.T) {
	p := Start(t, "/bin/sh", []string{"TESTENV_WORD=hello"}, "-c", `echo "$TESTENV_WORD"; echo oops >&2`)
	if p.Name != "sh" {
		t.Errorf("name %q, want sh", p.Name)
	}
	Eventually(t, "both lines captured", func() error {
		if out := p.Out.String(); !strings.Contains(out, "hello\n") || !strings.Contains(out, "oops\n") {
			return fmt.Errorf("output %q", out)
		}
		return nil
	})
}

func TestStopReportsCleanExit(t *testing.T) {
	p := Start(t, "/bin/sh", nil, "-c", `trap 'exit 0' INT; echo ready; while :; do sleep 1; done`)
	Eventually(t, "trap installed", func() error {
		if !strings.Contains(p.Out.String(), "ready") {
			return errors.New("no output yet")
		}
		return nil
	})
	if err := p.Stop(WaitTimeout); err != nil {
		t.Errorf("stop: %v, want a clean exit", err)
	}
	if err := p.Stop(WaitTimeout); err != nil {
		t.Errorf("second stop: %v, want the same clean exit", err)
	}
}

func TestCAServerCertificateVerifies(t *testing.T) {
	ca := NewCA(t)
	cert := ca.Server(t, "peer.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }() // the test is over
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake() // the client side reports the outcome
			_ = c.Close()
		}
	}()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("CA PEM does not parse")
	}
	for _, name := range []string{"peer.test", "127.0.0.1"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Errorf("dial as %s: %v", name, err)
			continue
		}
		_ = c.Close()
	}
	dir := t.TempDir()
	certFile, keyFile := WriteKeyPair(t, dir, cert)
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("written key pair does not load: %v", err)
	}
}
