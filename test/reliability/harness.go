// Package reliability is kubeplex's loss-accounting harness: a generator that stamps
// (app, sequence) into every line, sinks that record what arrived (drainpeer's
// syslog, syslog+TLS, HTTP and HTTPS receivers), a fault proxy on 127.0.0.1 between
// the router and a sink, and an accountant that checks that what was sent is exactly
// what was delivered plus what was announced dropped, with duplicates only where a
// batch was retried under the same frame id. The scenarios are the tests of this
// package; docs/reliability.md has their results and commands.
package reliability

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Line is the text of generated line seq of app: the accountant reads both back.
func Line(app string, seq int) string { return "app=" + app + " seq=" + strconv.Itoa(seq) }

// ParseLine reads app and seq back from a delivered message text.
func ParseLine(text string) (app string, seq int, ok bool) {
	a, s, found := strings.Cut(text, " seq=")
	if !found || !strings.HasPrefix(a, "app=") {
		return "", 0, false
	}
	n, err := strconv.Atoi(s)
	return strings.TrimPrefix(a, "app="), n, err == nil
}

// Generator posts stamped lines to a router's POST /logs with an ingest token.
type Generator struct {
	URL   string // http://router/logs
	Token string
	App   string
	next  int
}

// Send posts lines next..next+n-1 in batches of batch; it returns how many the
// router accepted (a refused batch is not sent: the router takes batches whole).
func (g *Generator) Send(n, batch int) (int, error) {
	sent := 0
	for sent < n {
		k := min(batch, n-sent)
		var body []byte
		for i := range k {
			body = wire.AppendFrame(body, fmt.Appendf(nil, "<190>1 %s h app web.1 - - %s",
				time.Now().UTC().Format(wire.TimeLayout), Line(g.App, g.next+i)))
		}
		req, err := http.NewRequest(http.MethodPost, g.URL, bytes.NewReader(body))
		if err != nil {
			return sent, err
		}
		req.Header.Set("Content-Type", wire.ContentType)
		req.Header.Set(wire.HeaderMsgCount, strconv.Itoa(k))
		req.SetBasicAuth("token", g.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return sent, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close() // read to the end
		if resp.StatusCode != http.StatusNoContent {
			return sent, fmt.Errorf("POST /logs = %d", resp.StatusCode)
		}
		g.next += k
		sent += k
	}
	return sent, nil
}

// Sent is how many lines the generator got accepted so far.
func (g *Generator) Sent() int { return g.next }

// Account is the accountant's verdict over what a sink received.
type Account struct {
	Delivered  int // distinct sequence numbers of the app
	Duplicates int // sequence numbers seen more than once
	Announced  int // sum of the L10 notices' counts
	Other      int // messages neither generated nor L10 (drain added/removed notices)
	Seqs       map[int]int
}

// Tally counts messages of app.
func Tally(app string, texts []string) Account {
	a := Account{Seqs: map[int]int{}}
	for _, t := range texts {
		var n int
		if _, err := fmt.Sscanf(t, "Error L10 (output buffer overflow): %d messages dropped", &n); err == nil {
			a.Announced += n
			continue
		}
		ap, seq, ok := ParseLine(t)
		if !ok || ap != app {
			a.Other++
			continue
		}
		a.Seqs[seq]++
		if a.Seqs[seq] == 2 {
			a.Duplicates++
		}
	}
	a.Delivered = len(a.Seqs)
	return a
}

// Balanced reports whether sent = delivered + announced, and says how not.
func (a Account) Balanced(sent int) error {
	if a.Delivered+a.Announced != sent {
		return fmt.Errorf("sent %d, delivered %d + announced %d = %d (unaccounted %d)",
			sent, a.Delivered, a.Announced, a.Delivered+a.Announced, sent-a.Delivered-a.Announced)
	}
	return nil
}

// Fault is what the proxy does to connections.
type Fault int32

// The proxy's faults.
const (
	Pass      Fault = iota // forward both ways
	Refuse                 // listen no more: connections are refused (ECONNREFUSED)
	Blackhole              // accept and never read or forward; open connections stop being read
	Reset                  // forward, then reset every connection now and later
	CutFrame               // forward CutAfter bytes of each connection, then close it mid-frame
	// Hangup is a receiver going away cleanly: the listener closes (new connections
	// are refused) and every open connection gets a FIN towards the router, while
	// what the router still writes before it notices is forwarded to the end. Unlike
	// Refuse, it loses nothing the kernel took.
	Hangup
)

// Proxy is a TCP fault proxy on 127.0.0.1 in front of Target.
type Proxy struct {
	Addr     string
	Target   string
	CutAfter int64

	ln    net.Listener // nil while refusing; guarded by mu
	fault atomic.Int32
	// rate, when > 0, limits what is forwarded towards the target to this many bytes
	// a second (a slow receiver); it applies to open connections at once.
	rate  atomic.Int64
	mu    sync.Mutex
	conns []net.Conn
	front []net.Conn // the router-facing side of conns
	dead  []net.Conn // accepted while blackholed: never read, reset once it ends
	wg    sync.WaitGroup
}

// Throttle makes the target read at most bytesPerSec (0: full speed), on open
// connections too.
func (p *Proxy) Throttle(bytesPerSec int64) { p.rate.Store(bytesPerSec) }

// NewProxy listens on 127.0.0.1:0 and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), Target: target, ln: ln}
	p.wg.Go(func() { p.accept(ln) })
	return p, nil
}

// Set changes the fault for new connections; Reset and Refuse also reset the
// current ones. Refuse closes the listener (a real refusal: an accepted connection
// that is closed at once would take the first writes into its socket buffer and lose
// them, which is TCP, not the router); the next other fault listens again on Addr.
func (p *Proxy) Set(f Fault) error {
	p.fault.Store(int32(f))
	p.mu.Lock()
	defer p.mu.Unlock()
	if f != Blackhole {
		// The receiver is back: what it accepted while dead it never read, and a
		// restarted receiver resets those connections (what the kernel took on them
		// is lost, as TCP loses it).
		for _, c := range p.dead {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
		p.dead = nil
	}
	if f == Hangup {
		for _, c := range p.front {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite() // FIN; keep reading what the router still sends
			}
		}
		p.front = nil
	}
	if f == Reset || f == Refuse {
		for _, c := range p.conns {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // RST, not FIN
			}
			_ = c.Close()
		}
		p.conns, p.front = nil, nil
	}
	refuse := f == Refuse || f == Hangup
	switch {
	case refuse && p.ln != nil:
		_ = p.ln.Close()
		p.ln = nil
	case !refuse && p.ln == nil:
		ln, err := net.Listen("tcp", p.Addr)
		if err != nil {
			return err
		}
		p.ln = ln
		p.wg.Go(func() { p.accept(ln) })
	}
	return nil
}

// Close stops the proxy and its connections.
func (p *Proxy) Close() {
	_ = p.Set(Refuse)
	p.wg.Wait()
}

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		switch Fault(p.fault.Load()) {
		case Reset:
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		case Blackhole:
			p.track(c)
			p.mu.Lock()
			p.dead = append(p.dead, c)
			p.mu.Unlock()
			continue
		}
		up, err := net.DialTimeout("tcp", p.Target, 3*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(c)
		p.track(up)
		p.mu.Lock()
		p.front = append(p.front, c)
		p.mu.Unlock()
		cut := Fault(p.fault.Load()) == CutFrame
		p.wg.Go(func() {
			var src io.Reader = c
			if cut {
				src = io.LimitReader(c, p.CutAfter)
			}
			p.forward(up, src)
			_ = up.Close()
			_ = c.Close()
		})
		p.wg.Go(func() {
			_, _ = io.Copy(c, up)
			_ = c.Close()
		})
	}
}

// forward copies src to dst, at most rate bytes a second while throttled.
func (p *Proxy) forward(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		for Fault(p.fault.Load()) == Blackhole {
			time.Sleep(20 * time.Millisecond) // read nothing: the router's writes fill the socket buffers
		}
		chunk := buf
		rate := p.rate.Load()
		if rate > 0 {
			// Read in tenths of a second's worth, so a slow receiver is slow evenly.
			chunk = buf[:min(int64(len(buf)), max(rate/10, 1))]
		}
		n, err := src.Read(chunk)
		if n > 0 {
			if _, werr := dst.Write(chunk[:n]); werr != nil {
				return
			}
			if rate > 0 {
				time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

// ErrTimeout is returned by Until when the condition never held.
var ErrTimeout = errors.New("condition not reached")

// Until polls cond every 20 ms until it holds or d passes.
func Until(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}
