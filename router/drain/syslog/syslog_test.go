package syslog_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drain/syslog"
	"github.com/kubeplex/kubeplex/router/drainpeer"
	"github.com/kubeplex/kubeplex/router/message"
)

const token = "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

type harness struct {
	sink      *syslog.Sink
	runner    *drain.Runner
	queue     *drain.Queue
	stats     *drain.Stats
	mu        sync.Mutex
	announced []string
	reported  []error
}

func (h *harness) Announced() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.announced...)
}

func (h *harness) Reported() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.reported...)
}

func start(t *testing.T, rawURL string, tlsOpt *routing.TLS, allow []netip.Prefix, opts syslog.Options, queue int) *harness {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &drain.Config{Drain: routing.Drain{ID: "ns/d", Token: token, URL: rawURL, TLS: tlsOpt}, App: "ns/app", URL: u}
	h := &harness{stats: &drain.Stats{}}
	h.queue = drain.NewQueue(queue, h.stats)
	env := drain.Env{
		Dialer: &drain.Dialer{Policy: egress.Policy{Allow: allow}, Timeout: time.Second},
		Logger: slog.New(slog.DiscardHandler),
		Report: func(err error) {
			h.stats.Fail(err, time.Now())
			h.mu.Lock()
			h.reported = append(h.reported, err)
			h.mu.Unlock()
		},
		Announce: func(s string) { h.mu.Lock(); h.announced = append(h.announced, s); h.mu.Unlock() },
	}
	s, err := syslog.New(cfg, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.sink = s
	h.runner = drain.NewRunner(cfg, h.queue, h.stats, s, drain.RunnerOptions{Logger: env.Logger, PauseMin: 10 * time.Millisecond, PauseMax: 100 * time.Millisecond})
	t.Cleanup(func() { h.stop(0) })
	return h
}

func (h *harness) stop(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	h.runner.Stop(ctx, false)
}

func (h *harness) push(from, n int) {
	h.pushPadded(from, n, 0)
}

func (h *harness) pushPadded(from, n, pad int) {
	for i := from; i < from+n; i++ {
		text := fmt.Sprint("line ", i)
		if pad > 0 {
			text += " " + strings.Repeat("x", pad)
		}
		h.runner.Offer([][]byte{message.AppendWireStrings(nil, 190, time.Unix(1764064800, int64(i)*1000), "app", "web.1", text)})
	}
}

func TestDeliversFramesInOrder(t *testing.T) {
	sink := drainpeer.NewSyslogSink(t, nil)
	h := start(t, "syslog://"+sink.Addr, nil, loopback, syslog.Options{}, 100000)
	const n = 5000
	h.push(0, n)
	got := sink.WaitFor(t, n)
	for i, m := range got {
		if m.Hostname != token || m.AppName != "app" || m.ProcID != "web.1" || string(m.Text) != fmt.Sprint("line ", i) || m.Priority != 190 {
			t.Fatalf("message %d = %+v", i, m)
		}
	}
	if c := sink.Conns(); c != 1 {
		t.Errorf("%d connections, want 1", c)
	}
	testenv.Until(t, "delivered count", func() bool { return h.stats.Delivered.Load() == n })
	if h.stats.Dropped.Load() != 0 {
		t.Errorf("dropped %d", h.stats.Dropped.Load())
	}
}

func TestReconnectsAfterReceiverRestart(t *testing.T) {
	sink := drainpeer.NewSyslogSink(t, nil)
	h := start(t, "syslog://"+sink.Addr, nil, loopback, syslog.Options{MinBackoff: 10 * time.Millisecond}, 1000)
	h.push(0, 10)
	sink.WaitFor(t, 10)
	// The delivered count is read before the sink's connection state: the runner
	// set that state up before it counted.
	testenv.Until(t, "10 delivered", func() bool { return h.stats.Delivered.Load() == 10 })
	sink.DropConnections()
	// The connection's reader sees the hang-up; the next batch goes on a new connection.
	testenv.Until(t, "hang-up seen", func() bool { return syslog.HungUp(h.sink) })
	h.push(10, 10)
	got := sink.WaitFor(t, 20)
	if string(got[19].Text) != "line 19" {
		t.Errorf("last message %q", got[19].Text)
	}
	if c := sink.Conns(); c != 2 {
		t.Errorf("%d connections, want 2", c)
	}
}

func TestRefusedThenUp(t *testing.T) {
	addr := testenv.FreeAddr(t)
	h := start(t, "syslog://"+addr, nil, loopback, syslog.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, 1000)
	h.push(0, 5)
	testenv.Until(t, "connection errors reported", func() bool { return len(h.Reported()) >= 3 })
	if h.stats.Delivered.Load() != 0 {
		t.Fatal("delivered to a refusing address")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err) // another process grabbed the freed port
	}
	if err := ln.Close(); err != nil { // frees the port again for the sink
		t.Fatal(err)
	}
	sink := drainpeer.NewSyslogSinkAt(t, addr, nil)
	got := sink.WaitFor(t, 5)
	if string(got[0].Text) != "line 0" {
		t.Errorf("first message %q", got[0].Text)
	}
	if st := h.stats.Status(0); st.LastError == "" || st.LastSuccess == nil {
		t.Errorf("status %+v, want last error and last success", st)
	}
}

func TestForbiddenAddress(t *testing.T) {
	sink := drainpeer.NewSyslogSink(t, nil)
	h := start(t, "syslog://"+sink.Addr, nil, nil, syslog.Options{MinBackoff: 10 * time.Millisecond}, 10)
	h.push(0, 1)
	testenv.Until(t, "refusal reported", func() bool { return len(h.Reported()) > 0 })
	if err := h.Reported()[0]; !errors.Is(err, drain.ErrForbiddenAddress) {
		t.Errorf("error %v, want ErrForbiddenAddress", err)
	}
	if sink.Conns() != 0 {
		t.Error("router connected to a loopback drain without an allowlist")
	}
}

func TestTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	other := testenv.NewCA(t)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "drain.example")}}
	tests := []struct {
		name    string
		tls     *routing.TLS
		deliver bool
		l14     string
	}{
		{name: "CA from table", tls: &routing.TLS{CAPEM: string(ca.PEM)}, deliver: true},
		{name: "CA and server name", tls: &routing.TLS{CAPEM: string(ca.PEM), ServerName: "drain.example"}, deliver: true},
		{name: "wrong CA", tls: &routing.TLS{CAPEM: string(other.PEM)}, l14: "certificate signed by unknown authority"},
		{name: "system roots", tls: nil, l14: "certificate signed by unknown authority"},
		{name: "wrong name", tls: &routing.TLS{CAPEM: string(ca.PEM), ServerName: "other.example"}, l14: "other.example"},
		{name: "insecure opt-out", tls: &routing.TLS{InsecureSkipVerify: true}, deliver: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := drainpeer.NewSyslogSink(t, srvCfg)
			h := start(t, "syslog+tls://"+sink.Addr, tt.tls, loopback, syslog.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, 10)
			h.push(0, 3)
			if tt.deliver {
				got := sink.WaitFor(t, 3)
				if got[0].Hostname != token {
					t.Errorf("hostname %q", got[0].Hostname)
				}
				return
			}
			testenv.Until(t, "L14 notice", func() bool { return len(h.Announced()) > 0 })
			// Several failed handshakes, one notice per failure streak.
			testenv.Until(t, "retries", func() bool { return len(h.Reported()) >= 3 })
			a := h.Announced()
			if len(a) != 1 || !strings.HasPrefix(a[0], "Error L14 (certificate validation): error=") ||
				!strings.Contains(a[0], tt.l14) || !strings.Contains(a[0], `uri="syslog+tls://`+sink.Addr+`/"`) {
				t.Errorf("announced %q", a)
			}
			if len(sink.Messages()) != 0 || h.stats.Delivered.Load() != 0 {
				t.Error("delivered over an unverified connection")
			}
		})
	}
}

// TestBlackholeAccounting: a receiver that accepts and never reads. Writes time out,
// the queue overflows, and at the end every message offered is delivered (written)
// or dropped, nothing in between.
func TestBlackholeAccounting(t *testing.T) {
	bh := drainpeer.NewBlackhole(t)
	h := start(t, "syslog://"+bh.Addr, nil, loopback, syslog.Options{WriteTimeout: 100 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, 100)
	// Push 1 KiB lines until the socket buffers are full and writes time out (bounded:
	// at most 200 MiB).
	n := 0
	for ; n < 200000 && len(h.Reported()) < 2; n += 1000 {
		h.pushPadded(n, 1000, 1024)
		// Paced by the runner: push again once it has taken from the full queue (its
		// write went into the socket buffers), or stop once writes time out.
		testenv.Until(t, "runner takes from the queue or times out", func() bool {
			return h.queue.Len() < 100 || len(h.Reported()) >= 2
		})
	}
	if len(h.Reported()) < 2 {
		t.Fatalf("no write timeouts after %d messages", n)
	}
	h.stop(200 * time.Millisecond)
	off, del, drop := h.stats.Offered.Load(), h.stats.Delivered.Load(), h.stats.Dropped.Load()
	t.Logf("offered %d delivered %d dropped %d connections %d", off, del, drop, bh.Conns())
	if off != int64(n) || del+drop != off {
		t.Fatalf("offered %d != delivered %d + dropped %d", off, del, drop)
	}
	if drop == 0 {
		t.Error("nothing dropped to a blackhole")
	}
}

// pausedReceiver accepts one connection and reads nothing from it until release is
// closed, so the sender's socket buffers fill and its writes go through in pieces.
func pausedReceiver(t *testing.T, release <-chan struct{}) (addr string, got <-chan []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() }) // the test is over
	out := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			out <- nil
			return
		}
		defer func() { _ = c.Close() }() // reading is over; the texts are the result
		<-release
		var texts []string
		fr := wire.NewFrameReader(c, 0)
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			rec, err := fr.Next()
			if err != nil {
				out <- texts
				return
			}
			m, err := wire.Parse(rec)
			if err != nil {
				texts = append(texts, "unparsable: "+err.Error())
				continue
			}
			texts = append(texts, string(m.Text))
		}
	}()
	return ln.Addr().String(), out
}

// TestOfferInlineAndPartialWrites: batches offered while the runner is idle are
// written from the caller's goroutine; when the receiver stops reading, writes go
// out in pieces and the runner finishes them. Every frame arrives whole, once, in
// order.
func TestOfferInlineAndPartialWrites(t *testing.T) {
	release := make(chan struct{})
	addr, got := pausedReceiver(t, release)
	h := start(t, "syslog://"+addr, nil, loopback, syslog.Options{}, 1_000_000)
	// The first batch makes the runner dial; later ones may go inline.
	const n, per = 20000, 100
	pad := strings.Repeat("x", 1000)
	for i := 0; i < n; i += per {
		var recs [][]byte
		for k := i; k < i+per; k++ {
			recs = append(recs, message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", fmt.Sprint("line ", k, " ", pad)))
		}
		h.runner.Offer(recs)
	}
	close(release)
	testenv.Until(t, "delivered count", func() bool { return h.stats.Delivered.Load() == n })
	h.stop(5 * time.Second) // closes the connection: the receiver sees the end
	texts := <-got
	if len(texts) != n {
		t.Fatalf("received %d frames, want %d", len(texts), n)
	}
	for i, s := range texts {
		if want := fmt.Sprint("line ", i, " ", pad); s != want {
			t.Fatalf("frame %d = %.40q…, want %.40q…", i, s, want)
		}
	}
	if d := h.stats.Dropped.Load(); d != 0 {
		t.Errorf("dropped %d", d)
	}
}

// TestTryWriteAfterDeadline: an inline write after a Deliver whose write deadline has
// since passed still goes out (TryWrite clears the deadline rather than tripping on it).
func TestTryWriteAfterDeadline(t *testing.T) {
	sink := drainpeer.NewSyslogSink(t, nil)
	u, _ := url.Parse("syslog://" + sink.Addr)
	cfg := &drain.Config{Drain: routing.Drain{ID: "ns/d", Token: token, URL: u.String()}, App: "ns/app", URL: u}
	s, err := syslog.New(cfg, drain.Env{Dialer: &drain.Dialer{Policy: egress.Policy{Allow: loopback}}}, syslog.Options{WriteTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }() // Sink.Close always returns nil
	batch := func(text string) *drain.Batch {
		var b drain.Batch
		b.AddRecord(message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", text), message.Host(token))
		return &b
	}
	var b drain.Batch
	if to := s.TryWrite(&b, 0); to != 0 {
		t.Fatalf("TryWrite of an empty batch = %d", to)
	}
	first := batch("first")
	if to := s.TryWrite(first, 0); to != 0 {
		t.Fatalf("TryWrite before any connection wrote %d bytes", to)
	}
	if n, err := s.Deliver(context.Background(), first); n != 1 || err != nil {
		t.Fatalf("Deliver = %d, %v", n, err)
	}
	time.Sleep(60 * time.Millisecond) // past the write deadline Deliver set
	second := batch("second")
	if to := s.TryWrite(second, 0); to != second.Size() {
		t.Fatalf("TryWrite wrote %d of %d bytes", to, second.Size())
	}
	got := sink.WaitFor(t, 2)
	if string(got[0].Text) != "first" || string(got[1].Text) != "second" {
		t.Fatalf("got %q, %q", got[0].Text, got[1].Text)
	}
}

// TestIdleConnectionClosed: a connection that carried a batch and then nothing for
// IdleTimeout is closed by the runner without waiting for another message, and the
// next batch goes out, in order, on a new one (docs/scaling.md: a replica holds
// connections only to the drains it is delivering to).
func TestIdleConnectionClosed(t *testing.T) {
	sink := drainpeer.NewSyslogSink(t, nil)
	h := start(t, "syslog://"+sink.Addr, nil, loopback, syslog.Options{IdleTimeout: 50 * time.Millisecond}, 1000)
	h.push(0, 10)
	sink.WaitFor(t, 10)
	sink.WaitClosed(t)
	h.push(10, 10)
	got := sink.WaitFor(t, 20)
	for i, m := range got {
		if string(m.Text) != fmt.Sprint("line ", i) {
			t.Fatalf("message %d = %q", i, m.Text)
		}
	}
	if c := sink.Conns(); c != 2 {
		t.Errorf("%d connections, want 2", c)
	}
	testenv.Until(t, "20 delivered", func() bool { return h.stats.Delivered.Load() == 20 })
}

// TestStalledConnectionResendsUnacknowledged: a receiver whose connection stops
// being read. The write makes no progress for WriteTimeout, the connection counts as
// stalled, and what of the batch the receiver's kernel never acknowledged is sent
// again on the next connection: the bytes the receiver held on the dead connection
// plus what arrives on the new one are every frame of the batch exactly once. (A
// write timeout that resent only from the first frame not wholly written lost what
// the router's own kernel still held for the dead connection.)
func TestStalledConnectionResendsUnacknowledged(t *testing.T) {
	ln, raw, u := smallBufferListener(t)
	stalled := make(chan error, 16)
	s, err := syslog.New(&drain.Config{Drain: routing.Drain{ID: "ns/d", Token: token, URL: raw}, App: "ns/app", URL: u},
		drain.Env{Dialer: &drain.Dialer{Policy: egress.Policy{Allow: loopback}, Timeout: time.Second}, Logger: slog.New(slog.DiscardHandler),
			Report: func(err error) { stalled <- err }},
		syslog.Options{WriteTimeout: 100 * time.Millisecond, StallClose: 300 * time.Millisecond, NotSentLowat: 4096,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const n = 3000
	var b drain.Batch
	for i := range n {
		b.AddRecord(message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", fmt.Sprintf("line %d %s", i, strings.Repeat("x", 80))), token)
	}
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		k, err := s.Deliver(context.Background(), &b)
		done <- result{k, err}
	}()
	c1, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c1.Close() }()
	// Reported as stalled first, then replaced.
	if err := <-stalled; !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("first failure %v, want a stall", err)
	}
	for err := range stalled {
		if strings.Contains(err.Error(), "connection replaced") {
			break
		}
		if !strings.Contains(err.Error(), "no progress") {
			t.Fatalf("failure %v, want a stall", err)
		}
	}
	// What the receiver's kernel took on the dead connection, and only that.
	var held int
	rc, _ := c1.(*net.TCPConn).SyscallConn()
	_ = rc.Control(func(fd uintptr) { held, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	got := make([]byte, held)
	if _, err := io.ReadFull(c1, got); err != nil {
		t.Fatalf("read the %d bytes held: %v", held, err)
	}
	_ = c1.Close()
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c2.Close() }()
	// Whole frames of the dead connection (a cut one is discarded with it), then
	// the new connection's until the batch is done.
	var idx []int
	collect := func(data []byte) {
		_, _ = wire.SplitFrames(data, 0, func(rec []byte) error { // a cut last frame ends it
			m, err := wire.Parse(rec)
			if err != nil {
				return err
			}
			var i int
			_, err = fmt.Sscanf(string(m.Text), "line %d", &i)
			idx = append(idx, i)
			return err
		})
	}
	collect(got)
	first := len(idx)
	read := make(chan []byte, 1)
	go func() {
		_ = c2.SetReadDeadline(time.Now().Add(time.Minute))
		rest, _ := io.ReadAll(c2) // until the sink closes (or the deadline: then frames are missing)
		read <- rest
	}()
	r := <-done
	if r.err != nil || r.n != n {
		t.Fatalf("Deliver = %d, %v; want %d, nil", r.n, r.err, n)
	}
	_ = s.Close()
	collect(<-read)
	for i, v := range idx {
		if v != i {
			t.Fatalf("frame %d is line %d (the dead connection gave lines 0..%d): a frame lost or repeated", i, v, first-1)
		}
	}
	if len(idx) != n {
		t.Fatalf("%d frames arrived, want %d", len(idx), n)
	}
	t.Logf("dead connection: %d bytes, %d whole frames; the rest on the next connection", held, first)
}

// TestStalledConnectionCountsEarlierBatches: a batch Deliver reported written, still
// in the kernel when the receiver stopped reading, is lost with the stalled
// connection when it is replaced; the next batch's Deliver says exactly how many of
// its frames never arrived (Batch.LostEarlier), for the runner to announce.
func TestStalledConnectionCountsEarlierBatches(t *testing.T) {
	ln, raw, u := smallBufferListener(t)
	replaced := make(chan error, 64)
	s, err := syslog.New(&drain.Config{Drain: routing.Drain{ID: "ns/d", Token: token, URL: raw}, App: "ns/app", URL: u},
		drain.Env{Dialer: &drain.Dialer{Policy: egress.Policy{Allow: loopback}, Timeout: time.Second}, Logger: slog.New(slog.DiscardHandler),
			Report: func(err error) {
				if strings.Contains(err.Error(), "connection replaced") {
					replaced <- err
				}
			}},
		// The earlier batch fits in what the receiver's kernel and the unsent bound
		// take together, so its Deliver returns; the next one stalls.
		syslog.Options{WriteTimeout: 100 * time.Millisecond, StallClose: 300 * time.Millisecond, NotSentLowat: 64 << 10,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	batch := func(from, n int) *drain.Batch {
		var b drain.Batch
		for i := from; i < from+n; i++ {
			b.AddRecord(message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", fmt.Sprintf("line %d %s", i, strings.Repeat("x", 80))), token)
		}
		return &b
	}
	const nA, nB = 300, 3000
	accepted := acceptN(ln, 2)
	a := batch(0, nA)
	if k, err := s.Deliver(context.Background(), a); k != nA || err != nil {
		t.Fatalf("earlier batch: Deliver = %d, %v; want %d, nil", k, err, nA)
	}
	c1 := <-accepted
	defer func() { _ = c1.Close() }()
	b := batch(nA, nB)
	done := make(chan error, 1)
	go func() {
		k, err := s.Deliver(context.Background(), b)
		if err == nil && k != nB {
			err = fmt.Errorf("Deliver = %d, want %d", k, nB)
		}
		done <- err
	}()
	if err := <-replaced; err == nil {
		t.Fatal("no replacement reported")
	}
	// What the receiver's kernel took on the dead connection, and only that.
	var held int
	rc, _ := c1.(*net.TCPConn).SyscallConn()
	_ = rc.Control(func(fd uintptr) { held, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	got := make([]byte, held)
	if _, err := io.ReadFull(c1, got); err != nil {
		t.Fatalf("read the %d bytes held: %v", held, err)
	}
	_ = c1.Close()
	c2 := <-accepted
	defer func() { _ = c2.Close() }()
	go func() { _, _ = io.Copy(io.Discard, c2) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	arrived := 0
	_, _ = wire.SplitFrames(got, 0, func(rec []byte) error { // a cut last frame ends it
		m, err := wire.Parse(rec)
		if err != nil {
			return err
		}
		var i int
		if _, err := fmt.Sscanf(string(m.Text), "line %d", &i); err == nil && i < nA {
			arrived++
		}
		return nil
	})
	if arrived == nA {
		t.Fatalf("all %d lines of the earlier batch reached the receiver: the test did not stall with them in the kernel", nA)
	}
	if arrived+b.LostEarlier != nA {
		t.Fatalf("earlier batch: %d lines arrived + %d counted lost = %d, want %d", arrived, b.LostEarlier, arrived+b.LostEarlier, nA)
	}
	t.Logf("earlier batch: %d of %d lines arrived before the stall, %d counted lost", arrived, nA, b.LostEarlier)
}

// TestResetConnectionCountsEarlierBatches: a receiver whose reader stopped resets
// its connection (a restarted receiver does): frames of a batch Deliver reported
// written that its kernel never acknowledged are lost with it, and the next batch's
// Deliver counts exactly those (tcpi_bytes_acked; SIOCOUTQ is empty after a reset).
// What the receiver's kernel acknowledged and its reader never read is beyond what
// TCP tells the sender, and not counted.
func TestResetConnectionCountsEarlierBatches(t *testing.T) {
	ln, raw, u := smallBufferListener(t)
	s, err := syslog.New(&drain.Config{Drain: routing.Drain{ID: "ns/d", Token: token, URL: raw}, App: "ns/app", URL: u},
		drain.Env{Dialer: &drain.Dialer{Policy: egress.Policy{Allow: loopback}, Timeout: time.Second}, Logger: slog.New(slog.DiscardHandler)},
		syslog.Options{NotSentLowat: 64 << 10, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const nA, nB = 300, 50
	var a, b drain.Batch
	for i := range nA + nB {
		bb := &a
		if i >= nA {
			bb = &b
		}
		bb.AddRecord(message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", fmt.Sprintf("line %d %s", i, strings.Repeat("x", 80))), token)
	}
	accepted := acceptN(ln, 2)
	if k, err := s.Deliver(context.Background(), &a); k != nA || err != nil {
		t.Fatalf("earlier batch: Deliver = %d, %v; want %d, nil", k, err, nA)
	}
	c1 := (<-accepted).(*net.TCPConn)
	// Wait until the receiver's kernel holds all it will (its window is shut), then
	// reset without reading: what it holds is what it acknowledged.
	var held int
	rc, _ := c1.SyscallConn()
	testenv.Until(t, "the receiver's window shut", func() bool {
		prev := held
		_ = rc.Control(func(fd uintptr) { held, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		return held > 0 && held == prev
	})
	acked := 0
	for i := range a.Len() {
		if a.End(i) <= held {
			acked++
		}
	}
	_ = c1.SetLinger(0)
	_ = c1.Close()
	testenv.Until(t, "the sink saw the reset", func() bool { return syslog.HungUp(s) })
	c2done := make(chan struct{})
	go func() {
		c2 := <-accepted
		_, _ = io.Copy(io.Discard, c2)
		close(c2done)
	}()
	if k, err := s.Deliver(context.Background(), &b); k != nB || err != nil {
		t.Fatalf("next batch: Deliver = %d, %v; want %d, nil", k, err, nB)
	}
	if acked == nA {
		t.Fatalf("the receiver's kernel took all %d lines: the test did not leave any in the sender's", nA)
	}
	if acked+b.LostEarlier != nA {
		t.Fatalf("earlier batch: %d lines acknowledged + %d counted lost = %d, want %d", acked, b.LostEarlier, acked+b.LostEarlier, nA)
	}
	t.Logf("earlier batch: receiver's kernel held %d bytes (%d whole lines), %d counted lost", held, acked, b.LostEarlier)
}

// smallBufferListener listens on 127.0.0.1 with an 8 KiB receive buffer, which
// accepted connections inherit, so a receiver that stops reading stalls its sender
// soon. It returns the listener and the drain URL for it, raw and parsed.
func smallBufferListener(t *testing.T) (net.Listener, string, *url.URL) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8192) })
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() }) // the test is over
	raw := "syslog://" + ln.Addr().String()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ln, raw, u
}

// acceptN hands out the first n connections ln accepts, in order.
func acceptN(ln net.Listener, n int) <-chan net.Conn {
	accepted := make(chan net.Conn, n)
	go func() {
		for range n {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	return accepted
}

// TestHandoverWhileRefused: a batch taken while the destination refuses
// connections was never sent, so a runner stopped for a successor (drain ownership
// moving) hands it over whole, and the successor delivers it; nothing is dropped.
func TestHandoverWhileRefused(t *testing.T) {
	addr := testenv.FreeAddr(t)
	h := start(t, "syslog://"+addr, nil, loopback, syslog.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, 1000)
	h.push(0, 5)
	testenv.Until(t, "connection errors reported", func() bool { return len(h.Reported()) >= 2 })
	carry := h.runner.Handover()
	if carry == nil || carry.Len() == 0 {
		t.Fatal("nothing handed over, want the unsent batch") // the rest is queued
	}
	sink := drainpeer.NewSyslogSinkAt(t, addr, nil)
	u, _ := url.Parse("syslog://" + addr)
	cfg := &drain.Config{Drain: routing.Drain{ID: "ns/d", Token: token, URL: u.String()}, App: "ns/app", URL: u}
	s, err := syslog.New(cfg, drain.Env{Dialer: &drain.Dialer{Policy: egress.Policy{Allow: loopback}, Timeout: time.Second},
		Logger: slog.New(slog.DiscardHandler), Report: func(error) {}, Announce: func(string) {}}, syslog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := drain.NewRunner(cfg, h.queue, h.stats, s, drain.RunnerOptions{Carry: carry})
	defer next.Stop(context.Background(), false)
	got := sink.WaitFor(t, 5)
	for i, m := range got {
		if want := fmt.Sprint("line ", i); string(m.Text) != want {
			t.Errorf("line %d = %q, want %q", i, m.Text, want)
		}
	}
	if d := h.stats.Dropped.Load(); d != 0 {
		t.Errorf("%d counted dropped", d)
	}
}
