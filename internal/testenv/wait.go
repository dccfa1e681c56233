package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// WaitTimeout bounds every wait for an eventual state. It is a failure guard, never
// a timing goal: a healthy run waits a fraction of it.
const WaitTimeout = 60 * time.Second

// Eventually calls cond until it returns nil and fails the test with cond's last
// error if that has not happened within WaitTimeout. cond runs at least once.
func Eventually(t testing.TB, what string, cond func() error) {
	t.Helper()
	EventuallyWithin(t, what, WaitTimeout, cond)
}

// EventuallyWithin is Eventually with a longer guard, for waits whose work grows
// with a test's size (ten thousand objects reconciled).
func EventuallyWithin(t testing.TB, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Until is Eventually for a condition that has no more to say than yes or no.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Eventually(t, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

// FreePort returns a loopback port that was free for TCP and UDP a moment ago, for a
// server that must be told its port before it starts (a flag, a webhook
// configuration). It never returns a port twice in one process, and it picks below
// the kernel's ephemeral range (32768-60999 by default) so that neither another
// FreePort caller nor an outgoing connection's source port takes the port between
// this call and the server's bind. Asking the kernel for port 0 did both: a CI run
// lost a router to "address already in use" when its admin and HTTP ports matched.
func FreePort(t testing.TB) int {
	t.Helper()
	freePorts.Lock()
	defer freePorts.Unlock()
	if freePorts.given == nil {
		freePorts.given = map[int]bool{}
	}
	for range 10000 {
		// 20000-29999: below the ephemeral range and the NodePort range (30000-32767).
		port := 20000 + rand.IntN(10000)
		if freePorts.given[port] || !bindable(port) {
			continue
		}
		freePorts.given[port] = true
		return port
	}
	t.Fatal("no free loopback port in 20000-29999")
	return 0
}

var freePorts struct {
	sync.Mutex
	given map[int]bool
}

// bindable reports whether both a TCP listener and a UDP socket can bind port now.
func bindable(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close() // only probing
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = c.Close() // only probing
	return true
}

// FreeAddr is FreePort as a 127.0.0.1 host:port, for a listen flag. Nothing listens
// there, so it is also an address whose connections are refused.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}

// WaitHTTP waits until a GET of url answers 200 (a server's /readyz).
func WaitHTTP(t testing.TB, url string) {
	t.Helper()
	Eventually(t, "GET "+url+" answers 200", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close() // drained; only the status matters
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// SyncBuffer is a bytes.Buffer safe for one writer (a process's output, a logger)
// and readers in the test at the same time.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
