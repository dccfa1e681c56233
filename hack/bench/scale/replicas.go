package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/hack/bench/benchrouter"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// Replica runs: N router processes on loopback behind front, a TCP proxy that gives
// each new connection to the next replica in turn (as a Service spreads new
// connections; its copying is the bench's CPU, not the routers').

func benchToken(i int) string { return fmt.Sprintf("t.%08x-0000-4000-8000-000000000000", i) }

// benchFrame is one 204-byte octet-counted RFC 5424 frame for app i.
func benchFrame(dst []byte, app, seq int) []byte {
	start := len(dst)
	dst = append(dst, "200 <190>1 2026-11-25T10:00:00.123456+00:00 bench-host "...)
	dst = append(dst, benchToken(app)...)
	dst = append(dst, " web.1 - - seq="...)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, ' ')
	for len(dst)-start < 204 {
		dst = append(dst, 'x')
	}
	return dst
}

// routers is a set of router processes with a syslog listener each
// (hack/bench/benchrouter), and their addresses by kind.
type routers struct {
	*benchrouter.Set
	syslog, http, admin []string
}

// startRouters starts n routers on table t (a file), each with its own ports;
// "{self}" in extra becomes each router's base URL.
func startRouters(bin string, n int, t *routing.Table, extra ...string) (*routers, error) {
	return startRouterSet(n, benchrouter.Options{Bin: bin, Table: t, Syslog: true, Args: extra})
}

func startRouterSet(n int, o benchrouter.Options) (*routers, error) {
	set, err := benchrouter.Start(context.Background(), n, o)
	if err != nil {
		return nil, err
	}
	rs := &routers{Set: set}
	for _, r := range set.Routers {
		rs.syslog = append(rs.syslog, r.Syslog)
		rs.http = append(rs.http, r.HTTP)
		rs.admin = append(rs.admin, r.Admin)
	}
	return rs, nil
}

// pids are the routers' process IDs.
func (rs *routers) pids() []int {
	out := make([]int, 0, len(rs.Routers))
	for _, r := range rs.Routers {
		out = append(out, r.Cmd.Process.Pid)
	}
	return out
}

// front proxies each accepted connection to the next backend in turn.
type front struct {
	ln     net.Listener
	next   atomic.Int64
	back   []string
	wg     sync.WaitGroup
	conns  sync.Map
	active []atomic.Int64 // open connections per backend
	out    []atomic.Bool  // backends taken out (an endpoint not ready)
}

func newFront(backends []string) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{ln: ln, back: backends, active: make([]atomic.Int64, len(backends)), out: make([]atomic.Bool, len(backends))}
	f.wg.Go(f.serve)
	return f, nil
}

func (f *front) addr() string { return f.ln.Addr().String() }

func (f *front) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		i := int(f.next.Add(1)-1) % len(f.back)
		for range f.back {
			if !f.out[i].Load() {
				break
			}
			i = int(f.next.Add(1)-1) % len(f.back)
		}
		f.wg.Go(func() {
			b, err := net.Dial("tcp", f.back[i])
			if err != nil {
				_ = c.Close()
				return
			}
			f.conns.Store(c, b)
			f.active[i].Add(1)
			back := make(chan struct{})
			go func() { _, _ = io.Copy(c, b); _ = c.Close(); close(back) }()
			_, _ = io.Copy(b, c)
			if tc, ok := b.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			<-back
			_ = b.Close()
			f.active[i].Add(-1)
			f.conns.Delete(c)
		})
	}
}

func (f *front) close() {
	_ = f.ln.Close()
	f.conns.Range(func(k, v any) bool {
		_ = k.(net.Conn).Close()
		_ = v.(net.Conn).Close()
		return true
	})
	f.wg.Wait()
}

// countSink accepts connections and counts octet-counted frames on all of them.
type countSink struct {
	ln     net.Listener
	frames atomic.Int64
	conns  atomic.Int64
	last   atomic.Int64 // unix nanos of the last frame
	wg     sync.WaitGroup
	mu     sync.Mutex
	open   []net.Conn
}

func newCountSink() (*countSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &countSink{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.read(c) })
		}
	})
	return s, nil
}

func (s *countSink) addr() string { return s.ln.Addr().String() }

// read follows the octet counts without parsing records.
func (s *countSink) read(c net.Conn) {
	r := bufio.NewReaderSize(c, 256<<10)
	for {
		n := 0
		for {
			b, err := r.ReadByte()
			if err != nil {
				return
			}
			if b == ' ' {
				break
			}
			n = n*10 + int(b-'0')
		}
		if _, err := r.Discard(n); err != nil {
			return
		}
		s.frames.Add(1)
		s.last.Store(time.Now().UnixNano())
	}
}

func (s *countSink) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// sendThrough writes frames over conns connections to addr, perConn on each. With
// interleave, connection k's j-th frame is for app (k+j) % apps (every connection
// carries every app); otherwise connection k carries app k % apps only, as a
// collector's connection carries its app's lines. Frames are written in blocks of
// 2000 built once per connection.
func sendThrough(addr string, conns, perConn, apps int, interleave bool) error {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for k := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = c.Close() }()
			const blockLen = 2000
			block := make([]byte, 0, blockLen*204)
			for j := range blockLen {
				app := k % apps
				if interleave {
					app = (k + j) % apps
				}
				block = benchFrame(block, app, j)
			}
			for left := perConn; left > 0; {
				m := min(left, blockLen)
				if _, err := c.Write(block[:m*204]); err != nil {
					errs <- err
					return
				}
				left -= m
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// waitFrames waits until the sinks together counted want frames, or nothing came for
// idle; it returns the count.
func waitFrames(sinks []*countSink, want int64, idle time.Duration) int64 {
	total := func() int64 {
		var n int64
		for _, s := range sinks {
			n += s.frames.Load()
		}
		return n
	}
	last, since := int64(-1), time.Now()
	for {
		n := total()
		if n >= want {
			return n
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > idle {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replicaRow is one throughput run.
type replicaRow struct {
	replicas      int
	msgsPerSec    []float64
	cpuPerMsg     []float64 // routers' CPU µs per input message
	delivered     int64
	sent          int64
	drainConns    int64
	rssPerReplica uint64
}

// measureReplicas: throughput of apps apps × 1 syslog drain each through n routers.
func measureReplicas(bin string, n, apps, messages, conns, reps int) (replicaRow, error) {
	return measureReplicasOwned(bin, n, 0, apps, messages, conns, reps)
}

// measureReplicasOwned is measureReplicas with --drain-owners owners (0 = off):
// the routers know each other (--peers) and sign forwarded batches with the table's
// session key; the warm-up starts once each lists all n as members.
func measureReplicasOwned(bin string, n, owners, apps, messages, conns, reps int) (replicaRow, error) {
	row := replicaRow{replicas: n}
	sinks := make([]*countSink, apps)
	t := &routing.Table{}
	for i := range apps {
		s, err := newCountSink()
		if err != nil {
			return row, err
		}
		defer s.close()
		sinks[i] = s
		t.Apps = append(t.Apps, routing.App{ID: fmt.Sprintf("bench/app-%d", i), History: 1500,
			Tokens: []routing.Token{{Token: benchToken(i), Source: srcApp}},
			Drains: []routing.Drain{{ID: fmt.Sprintf("bench/drain-%d", i), Token: fmt.Sprintf("d.%08x-0000-4000-8000-000000000000", i),
				URL: "syslog://" + s.addr()}}})
	}
	o := benchrouter.Options{Bin: bin, Table: t, Syslog: true, Args: []string{"--queue-size", "100000"}}
	if owners > 0 {
		t.SessionKeys = []routing.SessionKey{{ID: "bench", Key: strings.Repeat("5a", 32), Created: time.Now().UTC().Truncate(time.Second)}}
		o.Peers = true
		o.Args = append(o.Args, "--drain-owners", strconv.Itoa(owners), "--self-url", "{self}")
	}
	rs, err := startRouterSet(n, o)
	if err != nil {
		return row, err
	}
	defer rs.Stop()
	if owners > 0 {
		for _, adm := range rs.admin {
			if err := waitFor(context.Background(), time.Minute, 50*time.Millisecond, func() (bool, error) {
				var rep struct{ Members []string }
				resp, err := http.Get("http://" + adm + "/ownership")
				if err != nil {
					return false, nil
				}
				defer func() { _ = resp.Body.Close() }() // read-only
				return json.NewDecoder(resp.Body).Decode(&rep) == nil && len(rep.Members) == n, nil
			}); err != nil {
				return row, fmt.Errorf("replicas do not see each other: %w", err)
			}
		}
	}
	f, err := newFront(rs.syslog)
	if err != nil {
		return row, err
	}
	defer f.close()
	// Warm-up: every replica dials every drain (its owners only, with owners).
	if err := sendThrough(f.addr(), conns, apps*4, apps, true); err != nil {
		return row, err
	}
	warm := int64(conns * apps * 4)
	waitFrames(sinks, warm, 5*time.Second)
	for range reps {
		before := int64(0)
		for _, s := range sinks {
			before += s.frames.Load()
		}
		cpu0 := rs.CPU()
		start := time.Now()
		per := messages / conns
		if err := sendThrough(f.addr(), conns, per, apps, false); err != nil {
			return row, err
		}
		got := waitFrames(sinks, before+int64(per*conns), 3*time.Second) - before
		var last int64
		for _, s := range sinks {
			last = max(last, s.last.Load())
		}
		el := time.Unix(0, last).Sub(start)
		row.msgsPerSec = append(row.msgsPerSec, float64(got)/el.Seconds())
		row.cpuPerMsg = append(row.cpuPerMsg, float64((rs.CPU()-cpu0).Microseconds())/float64(per*conns))
		row.delivered += got
		row.sent += int64(per * conns)
	}
	for _, s := range sinks {
		row.drainConns += s.conns.Load()
	}
	for _, pid := range rs.pids() {
		row.rssPerReplica += rssOf(pid)
	}
	row.rssPerReplica /= uint64(n)
	return row, nil
}

// drainMemory: RSS per replica with drains idle apps × 1 drain, before and after
// each replica has delivered to every drain (one connection per drain per replica).
func drainMemory(bin string, n, drains int) (idle, connected uint64, conns int64, err error) {
	sink, err := newCountSink()
	if err != nil {
		return 0, 0, 0, err
	}
	defer sink.close()
	t := &routing.Table{}
	for i := range drains {
		t.Apps = append(t.Apps, routing.App{ID: fmt.Sprintf("bench/app-%d", i), History: 10,
			Tokens: []routing.Token{{Token: benchToken(i), Source: srcApp}},
			Drains: []routing.Drain{{ID: fmt.Sprintf("bench/drain-%d", i), Token: fmt.Sprintf("d.%08x-0000-4000-8000-000000000000", i),
				URL: "syslog://" + sink.addr()}}})
	}
	rs, err := startRouters(bin, n, t)
	if err != nil {
		return 0, 0, 0, err
	}
	defer rs.Stop()
	for _, pid := range rs.pids() {
		idle += rssOf(pid)
	}
	// Every replica gets a line for every app: n connections through the front.
	f, err := newFront(rs.syslog)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.close()
	if err := sendThrough(f.addr(), n, drains, drains, true); err != nil {
		return 0, 0, 0, err
	}
	waitFrames([]*countSink{sink}, int64(n*drains), 5*time.Second)
	if err := waitFor(context.Background(), 30*time.Second, 50*time.Millisecond, func() (bool, error) {
		return sink.conns.Load() >= int64(n*drains), nil
	}); err != nil {
		return 0, 0, sink.conns.Load(), fmt.Errorf("%d of %d drain connections: %w", sink.conns.Load(), n*drains, err)
	}
	for _, pid := range rs.pids() {
		connected += rssOf(pid)
	}
	return idle / uint64(n), connected / uint64(n), sink.conns.Load(), nil
}

// historyMemory: apps × lines held in history, spread by the front over n replicas.
func historyMemory(bin string, n, apps, lines int) (before, after []uint64, err error) {
	t := &routing.Table{}
	for i := range apps {
		t.Apps = append(t.Apps, routing.App{ID: fmt.Sprintf("bench/app-%d", i), History: lines,
			Tokens: []routing.Token{{Token: benchToken(i), Source: srcApp}}})
	}
	rs, err := startRouters(bin, n, t)
	if err != nil {
		return nil, nil, err
	}
	defer rs.Stop()
	for _, pid := range rs.pids() {
		before = append(before, rssOf(pid))
	}
	f, err := newFront(rs.syslog)
	if err != nil {
		return nil, nil, err
	}
	defer f.close()
	// 12 connections (4 per replica at 3): each carries lines for every app in turn.
	const conns = 12
	if err := sendThrough(f.addr(), conns, apps*lines/conns, apps, true); err != nil {
		return nil, nil, err
	}
	// History has no sink: wait until the replicas' history gauges hold every line.
	if err := waitFor(context.Background(), 2*time.Minute, 200*time.Millisecond, func() (bool, error) {
		sum := 0.0
		for _, adm := range rs.admin {
			sum += metricSum(adm, "kubeplex_router_app_history_lines")
		}
		return sum >= float64(apps*lines/conns*conns), nil
	}); err != nil {
		return nil, nil, err
	}
	for _, pid := range rs.pids() {
		after = append(after, rssOf(pid))
	}
	return before, after, nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func floats(xs []float64, f string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf(f, x)
	}
	return strings.Join(out, ", ")
}

// metricSum adds up every sample of a metric on a router's /metrics.
func metricSum(admin, name string) float64 {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + "/metrics") //nolint:noctx // loopback, with a timeout
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			sum += v
		}
	}
	return sum
}

// replicasSection runs the replica measurements and writes their section.
func replicasSection(bin string, messages, reps int) (string, error) {
	const apps, conns = 12, 12
	var rows []replicaRow
	for n := 1; n <= 3; n++ {
		r, err := measureReplicas(bin, n, apps, messages, conns, reps)
		if err != nil {
			return "", fmt.Errorf("%d replicas: %w", n, err)
		}
		fmt.Fprintf(os.Stderr, "replicas %d: %s msgs/s, %s CPU-µs/msg\n", n, floats(r.msgsPerSec, "%.0f"), floats(r.cpuPerMsg, "%.2f"))
		rows = append(rows, r)
	}
	type mem struct {
		n                 int
		idle, conn        uint64
		conns             int64
		drains            int
		perDrainReplica   float64
		perDrainAllCopies float64
	}
	const drains = 1000
	var mems []mem
	for n := 1; n <= 3; n++ {
		idle, conn, c, err := drainMemory(bin, n, drains)
		if err != nil {
			return "", fmt.Errorf("drain memory, %d replicas: %w", n, err)
		}
		per := float64(conn-idle) / drains
		mems = append(mems, mem{n: n, idle: idle, conn: conn, conns: c, drains: drains,
			perDrainReplica: per, perDrainAllCopies: per * float64(n)})
	}
	const happs, hlines = 1000, 1500
	b1, a1, err := historyMemory(bin, 1, happs, hlines)
	if err != nil {
		return "", fmt.Errorf("history, 1 replica: %w", err)
	}
	b3, a3, err := historyMemory(bin, 3, happs, hlines)
	if err != nil {
		return "", fmt.Errorf("history, 3 replicas: %w", err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench-scale` (`-only replicas`) on %s, %s; measured under load (%s).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAvg(), loadNote)
	fmt.Fprintf(&b, "N router processes (GOMAXPROCS=2 each, the machine's 2 CPUs shared by all of them, the load generator, the "+
		"sinks and the front) read the same table from a file; the front is a TCP proxy in the bench process that gives each new "+
		"connection to the next replica in turn, as a Service spreads new connections (its copying is not counted in the routers' CPU). "+
		"%d apps with one syslog drain each (a counting sink per drain); %d connections through the front, each sending %d 204-byte "+
		"frames of one app (as a collector's connection carries its app's lines), after a warm-up that makes every replica "+
		"dial every drain. Throughput is from the first write "+
		"to the last frame at a sink, median of %d runs (all runs in brackets); CPU is the routers' user+system time per input "+
		"message, summed over the replicas.\n\n", apps, conns, messages/conns, reps)
	mdHead(&b, "replicas", "msgs/s (median)", "runs", "routers' CPU-µs/msg (median)", "runs", "delivered / sent",
		"drain connections (per drain)", "RSS per replica")
	for _, r := range rows {
		mdRow(&b, r.replicas, fmt.Sprintf("%.0f", median(r.msgsPerSec)), floats(r.msgsPerSec, "%.0f"),
			fmt.Sprintf("%.2f", median(r.cpuPerMsg)), floats(r.cpuPerMsg, "%.2f"), fmt.Sprintf("%d / %d", r.delivered, r.sent),
			fmt.Sprintf("%d (%d)", r.drainConns, r.drainConns/apps), mib(r.rssPerReplica))
	}
	fmt.Fprintf(&b, "\nDrains and their connections: %d apps with one syslog drain each (one sink), no traffic (idle), then one "+
		"line per app through each replica (every replica dials every drain).\n\n", drains)
	mdHead(&b, "replicas", "RSS per replica, idle", "RSS per replica, every drain connected", "drain connections",
		"per drain, per replica", "per drain, all replicas")
	for _, m := range mems {
		mdRow(&b, m.n, mib(m.idle), mib(m.conn), fmt.Sprintf("%d (%d per drain)", m.conns, m.conns/int64(m.drains)),
			fmt.Sprintf("%.1f KiB", m.perDrainReplica/1024), fmt.Sprintf("%.1f KiB", m.perDrainAllCopies/1024))
	}
	sum := func(xs []uint64) uint64 {
		var t uint64
		for _, x := range xs {
			t += x
		}
		return t
	}
	grow1, grow3 := sum(a1)-sum(b1), sum(a3)-sum(b3)
	fmt.Fprintf(&b, "\nHistory: %d apps × %d lines of 204-byte frames, no drains, sent over 12 connections through the front "+
		"(each connection carries every app's lines in turn, so each replica holds about 1/N of each app's lines; a log session "+
		"merges them, docs/sessions.md).\n\n", happs, hlines)
	b.WriteString("| replicas | RSS per replica before → after | growth, all replicas | per buffered line |\n|---|---|---|---|\n")
	row := func(n int, before, after []uint64, grow uint64) {
		parts := make([]string, len(before))
		for i := range before {
			parts[i] = mib(before[i]) + " → " + mib(after[i])
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %.0f bytes |\n", n, strings.Join(parts, "; "), mib(grow), float64(grow)/float64(happs*hlines))
	}
	row(1, b1, a1, grow1)
	row(3, b3, a3, grow3)
	return b.String(), nil
}

// ownersSection measures 3 replicas with drain ownership off, K=1 and K=2.
func ownersSection(bin string, messages, reps int) (string, error) {
	const n, apps, conns = 3, 12, 12
	var rows []replicaRow
	var ks []int
	for _, k := range []int{0, 1, 2} {
		r, err := measureReplicasOwned(bin, n, k, apps, messages, conns, reps)
		if err != nil {
			return "", fmt.Errorf("owners %d: %w", k, err)
		}
		fmt.Fprintf(os.Stderr, "owners %d: %s msgs/s, %s CPU-µs/msg, %d drain connections\n", k, floats(r.msgsPerSec, "%.0f"),
			floats(r.cpuPerMsg, "%.2f"), r.drainConns)
		rows = append(rows, r)
		ks = append(ks, k)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench-scale` (`-only owners`) on %s, %s; %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAvg(), ownersLoadNote)
	fmt.Fprintf(&b, "The replicas run of the section above with %d replicas that know each other (`--peers`), "+
		"with `--drain-owners` off, 1 and 2: %d apps with one syslog drain each (a counting sink per drain), %d connections "+
		"through the round-robin front, each sending %d 204-byte frames of one app, after a warm-up line for every app "+
		"through every replica; median of %d runs. CPU is the routers' user+system time per input message, summed over "+
		"the replicas, forwarding included.\n\n", n, apps, conns, messages/conns, reps)
	mdHead(&b, "drain owners", "msgs/s (median)", "runs", "routers' CPU-µs/msg (median)", "runs", "delivered / sent",
		"drain connections (per drain)", "RSS per replica")
	for i, r := range rows {
		mode := "off"
		if ks[i] > 0 {
			mode = fmt.Sprintf("K=%d", ks[i])
		}
		mdRow(&b, mode, fmt.Sprintf("%.0f", median(r.msgsPerSec)), floats(r.msgsPerSec, "%.0f"),
			fmt.Sprintf("%.2f", median(r.cpuPerMsg)), floats(r.cpuPerMsg, "%.2f"), fmt.Sprintf("%d / %d", r.delivered, r.sent),
			fmt.Sprintf("%d (%d)", r.drainConns, r.drainConns/apps), mib(r.rssPerReplica))
	}
	return b.String(), nil
}

// ownersLoadNote says how the run was measured; SCALE_LOAD_NOTE replaces it (a run
// through bench-run at nice -10, say).
var ownersLoadNote = cmp.Or(os.Getenv("SCALE_LOAD_NOTE"), "measured under load (other engineers building on the same 2 CPUs)")
