// Command sessions benchmarks log sessions on real router processes and writes the
// "## Log sessions" section of docs/benchmarks.md:
//   - time to the last line of a 1500-line history merged from 3 replicas;
//   - the cost of concurrent tails (1 and 10, following the paced app and following
//     the bulk app itself): router ingest throughput (bulk POST /logs), router CPU per
//     bulk line, drain latency p99 and CPU per line at 10,000 lines/s in, each
//     without and with the tails.
//
// Bounded: about three minutes on a 2-core machine.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/hack/bench/benchdoc"
	"github.com/kubeplex/kubeplex/hack/bench/benchrouter"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/wire"
)

const (
	token      = "t.00000000-0000-4000-8000-000000000001"
	bulkToken  = "t.00000000-0000-4000-8000-000000000002"
	drainToken = "d.00000000-0000-4000-8000-000000000001"
	heading    = "## Log sessions"
	benchNS    = "bench"
	appName    = "app"
	appID      = benchNS + "/" + appName
	source     = "app"
)

var keys = []routing.SessionKey{{ID: benchNS, Key: strings.Repeat("42", 32), Created: time.Now().UTC().Truncate(time.Second)}}

type options struct {
	router      string
	doc         string
	reps        int
	bulk        int
	rate        int
	paced       time.Duration
	tails       []int
	profile     string
	profileBulk string
}

func main() {
	var o options
	flag.StringVar(&o.router, "router", "bin/router", "router binary")
	flag.StringVar(&o.doc, "doc", "", "markdown file to write the section into (empty: stdout only)")
	flag.IntVar(&o.reps, "reps", 5, "repetitions of each measurement")
	flag.IntVar(&o.bulk, "bulk", 1000000, "lines per bulk ingest run")
	flag.IntVar(&o.rate, "rate", 10000, "lines/s of the paced runs")
	flag.DurationVar(&o.paced, "paced", 8*time.Second, "length of each paced run")
	flag.Func("tails", "comma-separated counts of concurrent tail sessions to measure (default 1,10)", func(v string) error {
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return fmt.Errorf("bad tail count %q", f)
			}
			o.tails = append(o.tails, n)
		}
		return nil
	})
	flag.StringVar(&o.profile, "profile", "", "write the router's CPU profile of the first paced run with the most tails on app A to this file")
	flag.StringVar(&o.profileBulk, "profile-bulk", "", "write the router's CPU profile of the first bulk phase with the most tails on app B to this file")
	flag.Parse()
	if len(o.tails) == 0 {
		o.tails = []int{1, 10}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

type result struct {
	historyTimes  []time.Duration
	modes         []mode
	tailLines     int64
	load, loadEnd string
	took          time.Duration
}

// mode is one configuration of the tail benchmark: n tails following app (none for
// the baseline), and what was measured in each rep.
type mode struct {
	n         int
	app       string          // appName (the paced app A) or bulkName
	ingest    []float64       // bulk lines/s
	bulkCPU   []float64       // router CPU µs per bulk line during the bulk phase
	p99       []time.Duration // drain p99 at o.rate
	cpu       []float64       // router CPU µs per line at o.rate
	pacedRate []float64       // lines/s the paced sender achieved
	delivered int64
}

const bulkName = "bulk"

func (m *mode) name() string {
	switch {
	case m.n == 0:
		return "no tails"
	case m.app == bulkName:
		return fmt.Sprintf("%d on app B", m.n)
	}
	return fmt.Sprintf("%d on app A", m.n)
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	var r result
	r.load = loadAvg()
	if err := historyBench(ctx, o, &r); err != nil {
		return err
	}
	if err := tailBench(ctx, o, &r); err != nil {
		return err
	}
	r.took = time.Since(start)
	r.loadEnd = loadAvg()
	md := r.markdown(o)
	fmt.Print(md)
	if o.doc != "" {
		return benchdoc.WriteSection(o.doc, heading, md)
	}
	return nil
}

// startRouters runs n routers that know each other, with tbl
// (hack/bench/benchrouter); with profiling, a single router serves pprof on
// debugAddr.
func startRouters(ctx context.Context, o options, n int, tbl routing.Table) (*benchrouter.Set, error) {
	return benchrouter.Start(ctx, n, benchrouter.Options{Bin: o.router, Table: &tbl, Peers: true, LogLevel: "warn",
		Args: []string{"--queue-size", "100000"},
		Extra: func(int) ([]string, error) {
			if (o.profile == "" && o.profileBulk == "") || n != 1 {
				return nil, nil
			}
			var err error
			debugAddr, err = benchrouter.FreeAddr()
			return []string{"--debug-addr", debugAddr}, err
		}})
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// post sends recs (RFC 5424 records) as one logplex-1 batch.
func post(ctx context.Context, base, tok string, body []byte, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/logs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set(wire.HeaderMsgCount, strconv.Itoa(n))
	req.SetBasicAuth("token", tok)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("POST /logs: %d", resp.StatusCode)
	}
	return nil
}

// batch encodes n records; the text carries the send time in ns for latency.
func batch(dst []byte, seq, n int, at time.Time) []byte {
	ts := at.UTC().Format("2006-01-02T15:04:05.000000Z07:00")
	for i := range n {
		rec := fmt.Sprintf("<190>1 %s host app web.%d - - seq=%d sent=%019d padding-to-a-typical-line-length-of-about-120-bytes",
			ts, i%4+1, seq+i, at.UnixNano())
		dst = wire.AppendFrame(dst, []byte(rec))
	}
	return dst
}

func sessionURL(base string, c session.Claims) (string, error) {
	id, err := session.Sign(c, keys, time.Now(), time.Minute)
	if err != nil {
		return "", err
	}
	return base + "/sessions/" + id, nil
}

// historyBench: 500 lines into each of 3 replicas, then a 1500-line session.
func historyBench(ctx context.Context, o options, r *result) error {
	tbl := routing.Table{SessionKeys: keys, Apps: []routing.App{{ID: appID, Tokens: []routing.Token{{Token: token, Source: source}}}}}
	ps, err := startRouters(ctx, o, 3, tbl)
	if err != nil {
		return err
	}
	defer ps.Kill() // benchmark processes: nothing to flush
	base := time.Now()
	for i, p := range ps.Routers {
		var body []byte
		for k := range 500 {
			body = batch(body, i*500+k, 1, base.Add(time.Duration(3*k+i)*time.Microsecond))
		}
		if err := post(ctx, p.Base(), token, body, 500); err != nil {
			return err
		}
	}
	for rep := range o.reps + 1 {
		url, err := sessionURL(ps.Routers[rep%3].Base(), session.Claims{Namespace: benchNS, App: appName, Lines: 1500})
		if err != nil {
			return err
		}
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		n := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			n++
		}
		d := time.Since(t0)
		_ = resp.Body.Close()
		if n != 1500 {
			return fmt.Errorf("history session: %d lines, want 1500", n)
		}
		if rep > 0 { // the first warms connections between replicas
			r.historyTimes = append(r.historyTimes, d)
		}
	}
	return nil
}

// drainSink is a TCP syslog receiver recording each frame's latency.
type drainSink struct {
	ln   net.Listener
	n    atomic.Int64
	mu   sync.Mutex
	lats []time.Duration
}

func newSink() (*drainSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &drainSink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.read(c)
		}
	}()
	return s, nil
}

func (s *drainSink) read(c net.Conn) {
	defer func() { _ = c.Close() }() // receiver side
	fr := wire.NewFrameReader(bufio.NewReaderSize(c, 256<<10), 0)
	for {
		rec, err := fr.Next()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if i := bytes.Index(rec, []byte("sent=")); i >= 0 && len(rec) >= i+5+19 {
			if sent, err := strconv.ParseInt(string(rec[i+5:i+5+19]), 10, 64); err == nil {
				s.mu.Lock()
				s.lats = append(s.lats, time.Duration(now-sent))
				s.mu.Unlock()
			}
		}
		s.n.Add(1)
	}
}

func (s *drainSink) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lats
	s.lats = nil
	return l
}

// tails opens n tail sessions of app that read and count everything.
func tails(ctx context.Context, base, app string, n int, count *atomic.Int64) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range n {
		url, err := sessionURL(base, session.Claims{Namespace: benchNS, App: app, Tail: true})
		if err != nil {
			cancel()
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			return nil, err
		}
		wg.Go(func() {
			defer func() { _ = resp.Body.Close() }()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				count.Add(1)
			}
		})
	}
	return func() { cancel(); wg.Wait() }, nil
}

func tailBench(ctx context.Context, o options, r *result) error {
	sink, err := newSink()
	if err != nil {
		return err
	}
	defer func() { _ = sink.ln.Close() }()
	// App "tailed" gets the paced 10,000 lines/s, the drain and the tails; app "bulk"
	// the as-fast-as-possible ingest whose throughput is measured.
	tbl := routing.Table{SessionKeys: keys, Apps: []routing.App{
		{ID: appID, Tokens: []routing.Token{{Token: token, Source: source}},
			Drains: []routing.Drain{{ID: "bench/sink", Token: drainToken, URL: "syslog://" + sink.ln.Addr().String()}}},
		{ID: benchNS + "/" + bulkName, Tokens: []routing.Token{{Token: bulkToken, Source: source}}},
	}}
	ps, err := startRouters(ctx, o, 1, tbl)
	if err != nil {
		return err
	}
	defer ps.Kill() // benchmark processes: nothing to flush
	base, pid := ps.Routers[0].Base(), ps.Routers[0].Cmd.Process.Pid
	r.modes = []mode{{}}
	for _, n := range o.tails {
		r.modes = append(r.modes, mode{n: n, app: appName})
	}
	for _, n := range o.tails {
		r.modes = append(r.modes, mode{n: n, app: bulkName})
	}
	var tailCount atomic.Int64
	for rep := range o.reps {
		// Modes in turn within each rep, so drift in the machine's load hits all.
		for mi := range r.modes {
			m := &r.modes[mi]
			var stop func()
			if m.n > 0 {
				if stop, err = tails(ctx, base, m.app, m.n, &tailCount); err != nil {
					return err
				}
			}
			// Phase 1: the paced stream alone: drain latency and CPU per line.
			sink.take()
			before, cpu0 := sink.n.Load(), benchrouter.ProcCPU(pid)
			var profiled chan struct{}
			if m.n > 0 && m.n == slices.Max(o.tails) && m.app == appName && rep == 0 && o.profile != "" {
				profiled = make(chan struct{})
				go func() { defer close(profiled); saveProfile(o.profile, o.paced/2) }()
			}
			sent, err := paced(ctx, base, token, o.rate, o.paced/2)
			if profiled != nil {
				<-profiled
			}
			if err != nil {
				return err
			}
			if err := waitIdle(ctx, sink); err != nil {
				return err
			}
			cpu := benchrouter.ProcCPU(pid) - cpu0
			lats := sink.take()
			slices.Sort(lats)
			if len(lats) == 0 {
				return errors.New("paced run: no latency samples")
			}
			m.p99 = append(m.p99, lats[len(lats)*99/100])
			m.cpu = append(m.cpu, float64(cpu.Microseconds())/float64(sent))
			m.delivered += sink.n.Load() - before
			m.pacedRate = append(m.pacedRate, float64(sent)/(o.paced/2).Seconds())
			// Phase 2: the paced stream (and the tails) go on while app B takes bulk
			// ingest: its throughput is what the tails cost the router.
			pctx, pcancel := context.WithCancel(ctx)
			perr := make(chan error, 1)
			go func() {
				_, err := paced(pctx, base, token, o.rate, o.paced)
				perr <- err
			}()
			if m.n > 0 && m.n == slices.Max(o.tails) && m.app == bulkName && rep == 0 && o.profileBulk != "" {
				profiled = make(chan struct{})
				go func() { defer close(profiled); saveProfile(o.profileBulk, 2*time.Second) }()
			}
			cpu0 = benchrouter.ProcCPU(pid)
			rate, err := bulkIngest(ctx, base, o.bulk)
			bulkCPU := benchrouter.ProcCPU(pid) - cpu0
			if profiled != nil {
				<-profiled
				profiled = nil
			}
			pcancel()
			if err != nil {
				return err
			}
			if err := <-perr; err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			if stop != nil {
				stop()
			}
			if err := waitIdle(ctx, sink); err != nil {
				return err
			}
			m.ingest = append(m.ingest, rate)
			m.bulkCPU = append(m.bulkCPU, float64(bulkCPU.Microseconds())/float64(o.bulk))
			log.Printf("rep %d %s: bulk ingest %.0f lines/s (%.2f CPU-µs/line), paced p99 %v, %.1f CPU-µs/line", rep, m.name(), rate,
				m.bulkCPU[len(m.bulkCPU)-1], lats[len(lats)*99/100], m.cpu[len(m.cpu)-1])
		}
	}
	r.tailLines = tailCount.Load()
	return nil
}

// debugAddr is the pprof address of the single router when -profile is set.
var debugAddr string

func saveProfile(path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, int(d.Seconds())))
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer func() { _ = resp.Body.Close() }() // read to the end
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	if err != nil {
		log.Printf("profile: %v", err)
	}
}

// bulkIngest posts n lines to app "bulk" from 4 concurrent senders as fast as the
// router takes them.
func bulkIngest(ctx context.Context, base string, n int) (float64, error) {
	const per, senders = 500, 4
	body := batch(nil, 0, per, time.Now())
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	t0 := time.Now()
	for range senders {
		wg.Go(func() {
			for next.Add(per) <= int64(n) {
				if err := post(ctx, base, bulkToken, body, per); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// paced sends rate lines/s in 100 batches a second for d; returns the lines sent.
func paced(ctx context.Context, base, tok string, rate int, d time.Duration) (int, error) {
	const tick = 10 * time.Millisecond
	per := rate / int(time.Second/tick)
	t := time.NewTicker(tick)
	defer t.Stop()
	end := time.Now().Add(d)
	sent := 0
	var body []byte
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case now := <-t.C:
			body = batch(body[:0], sent, per, now)
			if err := post(ctx, base, tok, body, per); err != nil {
				return sent, err
			}
			sent += per
		}
	}
	return sent, nil
}

// waitIdle waits until the sink has received nothing for 300 ms (bounded by 30 s).
func waitIdle(ctx context.Context, s *drainSink) error {
	last, since := s.n.Load(), time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if n := s.n.Load(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 300*time.Millisecond {
			return nil
		}
	}
	return errors.New("drain did not go idle")
}

func median[T int64 | float64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

func (r *result) markdown(o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench` (hack/bench/sessions) on real router processes on 127.0.0.1, **on a loaded\n"+
		"shared machine** (load average %s at the start; other engineers' builds and tests were running), %d reps,\n"+
		"%.0f s in all. Compare the two columns of one run with each other, not with other sections.\n\n", r.load, o.reps, r.took.Seconds())
	fmt.Fprintf(&b, "**History merged from 3 replicas.** 500 lines in each of 3 router processes, one session of `lines: 1500`\n"+
		"(text/plain) read to its last line from one of them: median %v (min %v, max %v).\n\n",
		median(r.historyTimes).Round(100*time.Microsecond), slices.Min(r.historyTimes).Round(100*time.Microsecond),
		slices.Max(r.historyTimes).Round(100*time.Microsecond))
	fmt.Fprintf(&b, "**Tails at %d lines/s in.** One router. App A gets %d lines/s (100 batches a second) and has a\n"+
		"syslog drain to a local receiver. Drain p99 and CPU per line: app A's paced stream alone for %v (send → drain\n"+
		"receiver). Ingest: meanwhile %d lines POSTed to app B by 4 senders in batches of 500, as fast as the router\n"+
		"takes them; its throughput, and the router's CPU time during that phase per app B line (steadier under load:\n"+
		"it does not depend on how much CPU the machine leaves the router). The tails (text/plain, read by the harness\n"+
		"on the same machine) follow app A (the goal's case) or app B itself (every bulk line offered to every tail,\n"+
		"which overflow and get L11). Medians over the reps; the modes take turns within each rep.\n\n",
		o.rate, o.rate, o.paced/2, o.bulk)
	b.WriteString("| |")
	for _, m := range r.modes {
		fmt.Fprintf(&b, " %s |", m.name())
	}
	b.WriteString("\n|---|")
	for range r.modes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	base := &r.modes[0]
	row := func(label string, cell func(m *mode) string) {
		b.WriteString("| " + label + " |")
		for i := range r.modes {
			b.WriteString(" " + cell(&r.modes[i]) + " |")
		}
		b.WriteString("\n")
	}
	change := func(v, v0 float64) string {
		if v0 == 0 {
			return ""
		}
		return fmt.Sprintf(" (%+.1f%%)", 100*(v-v0)/v0)
	}
	row("ingest throughput (app B)", func(m *mode) string {
		return fmt.Sprintf("%.0fk lines/s", median(m.ingest)/1000) + change(median(m.ingest), median(base.ingest))
	})
	row("router CPU per app B line (bulk phase)", func(m *mode) string {
		return fmt.Sprintf("%.2f µs", median(m.bulkCPU)) + change(median(m.bulkCPU), median(base.bulkCPU))
	})
	row(fmt.Sprintf("drain p99 at %d lines/s", o.rate), func(m *mode) string { return median(m.p99).Round(10 * time.Microsecond).String() })
	row(fmt.Sprintf("router CPU per line at %d lines/s", o.rate), func(m *mode) string {
		return fmt.Sprintf("%.1f µs", median(m.cpu)) + change(median(m.cpu), median(base.cpu))
	})
	row("paced rate achieved", func(m *mode) string { return fmt.Sprintf("%.0f lines/s", median(m.pacedRate)) })
	row("lines delivered by the drain in the paced runs", func(m *mode) string { return strconv.FormatInt(m.delivered, 10) })
	runs := func(v []float64) string {
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprintf("%.0fk", x/1000))
		}
		return strings.Join(out, ", ")
	}
	row("ingest runs, in order", func(m *mode) string { return runs(m.ingest) })
	fmt.Fprintf(&b, "\nLoad average at the end: %s. Lines read by the tails in all: %d. Goal: tails cost ≤ 10%% of ingest\n"+
		"throughput. The spread of the runs shows how much the machine's load moves the throughput: a difference\n"+
		"smaller than that spread is not a measurement of the tails. CPU per line is the steadier signal.\n", r.loadEnd, r.tailLines)
	return b.String()
}
