package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Relay names, as -only and -latency-relays take them and the report rows show them.
const (
	relayLoopback = "loopback" // no relay: the harness's own ceiling
	relayCopy     = "copy"
	relayRsyslog  = "rsyslog"
	relayRouter   = "router"
	relayRouter1P = "router-1p"
	// relayRouterNoCo is the router with --syslog-coalesce=0: what coalescing changes.
	relayRouterNoCo = "router-nocoalesce"
	// relayBaseline is -baseline's router binary, for before/after in one run.
	relayBaseline = "router-baseline"
	// onlyLatency is the -only value for the latency runs alone.
	onlyLatency = "latency"
)

type bench struct {
	o   options
	dir string
}

// scenario is one throughput run's shape.
type scenario struct {
	relay  string
	conns  int
	drains int // app 0's syslog drains (fan-out)
	load   load
	// apps, when set, runs that many apps with one syslog drain each (load.apps
	// rotates the frames over them).
	apps int
	// http: app 0 has one HTTP drain into a logplex-1 receiver answering after slow.
	http bool
	slow time.Duration
	// otlp: app 0 has one otlp+http drain with this compression ("gzip", "none") into
	// an OTLP/HTTP receiver.
	otlp string
	// messages overrides o.messages.
	messages int
}

// String describes the scenario as the log lines show it (and -match matches it).
func (sc scenario) String() string {
	return fmt.Sprintf("%-8s conns=%d drains=%d perWrite=%d apps=%d http=%v slow=%s otlp=%s",
		sc.relay, sc.conns, sc.drains, sc.load.perWrite, sc.apps, sc.http, sc.slow, sc.otlp)
}

type throughput struct {
	Relay     string
	Conns     int
	Drains    int
	PerWrite  int
	Apps      int
	HTTP      bool
	Slow      time.Duration
	OTLP      string
	Sent      int64
	Delivered int64 // per drain, minimum over drains
	Rate      float64
	CPUus     float64 // relay CPU per input message
	HarnessUs float64 // load generator and sink CPU per delivered frame
	PeakRSS   int64
	Runs      []float64
	// HTTP drain runs: requests, mean and largest frames per request, mean body
	// bytes, most requests in flight at once.
	Requests    int
	MeanBatch   float64
	MaxBatch    int
	MeanBody    float64
	MaxInFlight int64
	// IdleCPU is the relay's CPU per second of wall time over 3 s after the run
	// (many apps: every drain connected, nothing sent).
	IdleCPU time.Duration
}

type latency struct {
	Relay     string
	Rate      int
	Sent      int
	Delivered int
	P50, P99  time.Duration
	Max       time.Duration
	CPUus     float64 // median over the runs
	CPUs      []float64
	P99s      []time.Duration
}

type historyMem struct {
	Apps, Messages int
	RSSBefore      int64
	RSSAfter       int64
	Footprint      int64 // kubeplex_router_app_history_bytes summed
}

type report struct {
	Messages   int
	Reps       int
	Throughput []throughput
	Latency    []latency
	History    *historyMem
	Took       time.Duration
	CPUs       int
	Load       string
	LoadEnd    string
	LatDur     time.Duration
}

func (b *bench) all(ctx context.Context) (*report, error) {
	rep := &report{Messages: b.o.messages, Reps: b.o.reps, CPUs: runtime.NumCPU(), Load: loadAvg(), LatDur: b.o.latDur}
	// Small pieces: one frame per write, as a syslog client writes, and 20 frames
	// (4 KiB) per write, as a collector writing what it read writes.
	small, pieces := load{perWrite: 1}, load{perWrite: 20}
	for _, sc := range []scenario{
		{relay: relayLoopback, conns: 1, drains: 1}, {relay: relayLoopback, conns: 4, drains: 1},
		{relay: relayLoopback, conns: 1, drains: 10},
		{relay: relayLoopback, conns: 1, drains: 1, load: small}, {relay: relayLoopback, conns: 1, drains: 1, load: pieces},
		{relay: relayCopy, conns: 1, drains: 1}, {relay: relayCopy, conns: 1, drains: 1, load: small},
		{relay: relayCopy, conns: 1, drains: 1, load: pieces},
		{relay: relayRsyslog, conns: 1, drains: 1}, {relay: relayRsyslog, conns: 4, drains: 1},
		{relay: relayRsyslog, conns: 1, drains: 1, load: small}, {relay: relayRsyslog, conns: 1, drains: 1, load: pieces},
		{relay: relayRouter, conns: 1, drains: 1}, {relay: relayRouter, conns: 4, drains: 1},
		{relay: relayRouter, conns: 1, drains: 1, load: small}, {relay: relayRouter, conns: 1, drains: 1, load: pieces},
		{relay: relayRouter, conns: 1, drains: 10},
		{relay: relayRouter, conns: 1, drains: 1, apps: 1000, load: load{apps: 1000}},
		{relay: relayRouter, conns: 1, drains: 1, http: true},
		{relay: relayRouter, conns: 1, drains: 1, http: true, slow: 20 * time.Millisecond, messages: b.o.messages / 5},
		{relay: relayRouter, conns: 1, drains: 1, otlp: "gzip"},
		{relay: relayRouter, conns: 1, drains: 1, otlp: "none"},
		{relay: relayBaseline, conns: 1, drains: 1}, {relay: relayBaseline, conns: 4, drains: 1},
		{relay: relayBaseline, conns: 1, drains: 1, load: small}, {relay: relayBaseline, conns: 1, drains: 1, load: pieces},
		{relay: relayBaseline, conns: 1, drains: 1, http: true},
		{relay: relayBaseline, conns: 1, drains: 1, http: true, slow: 20 * time.Millisecond, messages: b.o.messages / 5},
		{relay: relayRouter1P, conns: 1, drains: 1}, {relay: relayRouter1P, conns: 4, drains: 1},
		{relay: relayRouter1P, conns: 1, drains: 1, load: small},
		{relay: relayRouter1P, conns: 1, drains: 10},
	} {
		if b.o.only == onlyLatency {
			break
		}
		if b.skip(sc) {
			continue
		}
		var runs []throughput
		for rep := 0; rep < b.o.reps; rep++ {
			tp, err := b.throughput(ctx, sc)
			if err != nil {
				return nil, fmt.Errorf("%s %d conns: %w", sc.relay, sc.conns, err)
			}
			log.Printf("%s: %.0f msg/s, %.2f CPU-µs/msg, harness %.3f CPU-µs/frame, peak RSS %d MiB, delivered %d/%d",
				sc, tp.Rate, tp.CPUus, tp.HarnessUs, tp.PeakRSS>>20, tp.Delivered, tp.Sent)
			if sc.http || sc.apps > 0 {
				log.Printf("  requests %d (mean %.0f, max %d frames, %.0f B), in flight %d, idle CPU %s/s",
					tp.Requests, tp.MeanBatch, tp.MaxBatch, tp.MeanBody, tp.MaxInFlight, tp.IdleCPU)
			}
			runs = append(runs, tp)
		}
		slices.SortFunc(runs, func(a, b throughput) int { return cmpFloat(a.Rate, b.Rate) })
		med := runs[len(runs)/2]
		for _, r := range runs {
			med.Runs = append(med.Runs, r.Rate)
		}
		rep.Throughput = append(rep.Throughput, med)
	}
	if (b.o.only != "" && b.o.only != onlyLatency) || b.o.match != nil {
		return rep, nil
	}
	latRelays := []string{relayLoopback, relayCopy, relayRsyslog, relayRouter, relayRouterNoCo, relayRouter1P}
	if b.o.baseline != "" {
		latRelays = append(latRelays, relayBaseline)
	}
	var relays []string
	for _, relay := range latRelays {
		if b.o.latencyRelays == "" || slices.Contains(strings.Split(b.o.latencyRelays, ","), relay) {
			relays = append(relays, relay)
		}
	}
	// Tail latency of one short run is noisy: repeat, report the run with the median
	// p99 per rate and keep every p99, and the median CPU. The repetitions go round
	// the relays (A B C A B C ...) so that a change in the machine's load shows up
	// in every relay's runs rather than in one relay's.
	runs := map[string][][]latency{}
	for range b.o.reps {
		for _, relay := range relays {
			ls, err := b.latency(ctx, relay)
			if err != nil {
				return nil, fmt.Errorf("%s latency: %w", relay, err)
			}
			runs[relay] = append(runs[relay], ls)
		}
	}
	for _, relay := range relays {
		rs := runs[relay]
		for i := range rs[0] {
			var at []latency
			var cpus []float64
			for _, ls := range rs {
				at = append(at, ls[i])
				cpus = append(cpus, ls[i].CPUus)
			}
			slices.SortFunc(at, func(a, b latency) int { return int(a.P99 - b.P99) })
			slices.Sort(cpus)
			med := at[len(at)/2]
			med.CPUus, med.CPUs = cpus[len(cpus)/2], cpus
			for _, l := range at {
				med.P99s = append(med.P99s, l.P99)
			}
			rep.Latency = append(rep.Latency, med)
		}
	}
	if b.o.only != "" {
		return rep, nil
	}
	h, err := b.history(ctx)
	if err != nil {
		return nil, fmt.Errorf("history memory: %w", err)
	}
	rep.History = h
	return rep, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (b *bench) start(ctx context.Context, relay string, sinks []*sink, queue int) (*relay, error) {
	addrs := make([]string, 0, len(sinks))
	for _, s := range sinks {
		addrs = append(addrs, s.Addr)
	}
	switch relay {
	case relayRsyslog:
		return b.startRsyslog(ctx, addrs[0])
	case relayCopy:
		return b.startCopy(ctx, addrs[0])
	case relayRouter:
		return b.startRouter(ctx, syslogURLs(addrs), 1, false, queue)
	case relayRouter1P:
		// One P: what a pod with a CPU limit of 1 gets (Go sizes GOMAXPROCS from the
		// cgroup limit), and no cross-CPU wake-ups between ingest and drain.
		return b.startRouter(ctx, syslogURLs(addrs), 1, false, queue, "GOMAXPROCS=1")
	case relayRouterNoCo:
		return b.startRouterWith(ctx, routerRun{bin: b.o.router, args: []string{"--syslog-coalesce=0"}}, syslogURLs(addrs), 1, false, queue)
	case relayBaseline:
		return b.startRouterWith(ctx, routerRun{bin: b.o.baseline}, syslogURLs(addrs), 1, false, queue)
	}
	return nil, fmt.Errorf("unknown relay %q", relay)
}

func syslogURLs(addrs []string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, "syslog://"+a)
	}
	return out
}

// newSinks makes the receivers of a scenario: an OTLP or HTTP receiver, or one
// syslog sink per drain.
func newSinks(sc scenario, drains int) (sinks []*sink, hs *httpSink, osk *otlpSink, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for _, c := range closers {
			c()
		}
	}
	switch {
	case sc.otlp != "":
		if osk, err = newOTLPSink(); err != nil {
			return nil, nil, nil, closeAll, err
		}
		closers = append(closers, osk.close)
		sinks = append(sinks, &osk.counts)
	case sc.http:
		if hs, err = newHTTPSink(sc.slow); err != nil {
			return nil, nil, nil, closeAll, err
		}
		closers = append(closers, hs.close)
		sinks = append(sinks, &hs.counts)
	default:
		for range drains {
			s, err := newSink()
			if err != nil {
				return nil, nil, nil, closeAll, err
			}
			closers = append(closers, s.close)
			sinks = append(sinks, s)
		}
	}
	return sinks, hs, osk, closeAll, nil
}

// throughput relays o.messages frames and measures delivered frames per second from
// the first write to the last frame received.
func (b *bench) throughput(ctx context.Context, sc scenario) (throughput, error) {
	n := b.o.messages
	if sc.messages > 0 {
		n = sc.messages
	}
	name, conns, drains := sc.relay, sc.conns, sc.drains
	tp := throughput{Relay: name, Conns: conns, Drains: drains, Sent: int64(n), PerWrite: sc.load.perWrite,
		Apps: sc.apps, HTTP: sc.http, Slow: sc.slow, OTLP: sc.otlp}
	sinks, hs, osk, closeSinks, err := newSinks(sc, drains)
	if err != nil {
		return tp, err
	}
	defer closeSinks()
	target := ""
	if !sc.http && sc.otlp == "" {
		target = sinks[0].Addr
	}
	var r *relay
	if name != relayLoopback {
		var err error
		// Queue as deep as rsyslog's default main queue (100,000), so neither relay
		// is measured by how it sheds load.
		rr := routerRun{bin: b.o.router}
		if name == relayBaseline {
			rr.bin = b.o.baseline
		}
		switch {
		case sc.otlp != "":
			r, err = b.startRouterWith(ctx, rr, []string{"otlp+http://" + osk.Addr + "#" + sc.otlp}, 1, false, 100_000)
		case sc.http:
			r, err = b.startRouterWith(ctx, rr, []string{hs.URL}, 1, false, 100_000)
		case sc.apps > 0:
			r, err = b.startRouterWith(ctx, rr, syslogURLs([]string{sinks[0].Addr}), sc.apps, true, 100_000)
		default:
			r, err = b.start(ctx, name, sinks, 100_000)
		}
		if err != nil {
			return tp, err
		}
		defer r.stop()
		target = r.addr
	}
	var cpu0 time.Duration
	if r != nil {
		cpu0 = r.cpu()
		if r.debug != "" {
			done := make(chan struct{})
			go func() {
				defer close(done)
				kind := ""
				switch {
				case sc.otlp != "":
					kind = "-otlp-" + sc.otlp
				case sc.http:
					kind = "-http"
				}
				saveProfile(r.debug, "profile?seconds=1", fmt.Sprintf("%s-%s-%dc-%dd%s.pprof", b.o.profile, name, conns, drains, kind))
			}()
			defer func() { <-done }()
		}
	}
	self0 := selfCPU()
	t0 := time.Now()
	if name == relayLoopback && drains > 1 {
		// The harness's own ceiling for fan-out: the same frames written straight to
		// every sink, one connection each, as a relay with that many drains would.
		var wg sync.WaitGroup
		errs := make(chan error, drains)
		for _, s := range sinks {
			wg.Go(func() { errs <- sendBulk(ctx, s.Addr, conns, n, sc.load) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return tp, err
			}
		}
	} else if err := sendBulk(ctx, target, conns, n, sc.load); err != nil {
		return tp, err
	}
	want := int64(n * drains)
	if sc.apps > 0 {
		want = int64(n) // one sink for every app's drain
	}
	total, last, err := waitCount(ctx, sinks, want, 3*time.Second)
	if err != nil {
		return tp, err
	}
	tp.Delivered = int64(n)
	for _, s := range sinks {
		tp.Delivered = min(tp.Delivered, s.count.Load())
	}
	tp.Rate = float64(tp.Delivered) / last.Sub(t0).Seconds()
	tp.HarnessUs = float64((selfCPU() - self0).Microseconds()) / float64(max(total, 1))
	if r != nil {
		tp.CPUus = float64((r.cpu() - cpu0).Microseconds()) / float64(n)
		tp.PeakRSS, _ = r.memory()
	}
	logShortfall(r, want-tp.Delivered)
	if hs != nil {
		tp.Requests, tp.MeanBatch, tp.MaxBatch, tp.MeanBody = hs.batchStats()
		tp.MaxInFlight = hs.maxIn.Load()
	}
	if sc.apps > 0 && r != nil {
		c0, t1 := r.cpu(), time.Now()
		time.Sleep(3 * time.Second)
		tp.IdleCPU = (r.cpu() - c0) * time.Second / time.Since(t1)
	}
	return tp, nil
}

func (b *bench) latency(ctx context.Context, name string) ([]latency, error) {
	s, err := newSink()
	if err != nil {
		return nil, err
	}
	defer s.close()
	var r *relay
	if name != relayLoopback {
		if r, err = b.start(ctx, name, []*sink{s}, 100_000); err != nil {
			return nil, err
		}
		defer r.stop()
	}
	target := s.Addr
	if r != nil {
		target = r.addr
	}
	// One connection for all rates, warmed up first: the first messages of a fresh
	// relay pay for dialling its drain and growing its buffers (10-15 ms here), which
	// is not the steady state the percentiles describe.
	c, err := net.Dial("tcp", target)
	if err != nil {
		return nil, fmt.Errorf("dial relay: %w", err)
	}
	defer func() { _ = c.Close() }() // the runs are over; the sink counted what arrived
	warm, err := sendPaced(ctx, c, 10_000, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if _, _, err := waitCount(ctx, []*sink{s}, int64(warm), 3*time.Second); err != nil {
		return nil, err
	}
	s.latency.Store(true)
	var out []latency
	for _, rate := range b.o.rates {
		before := s.count.Load()
		var cpu0 time.Duration
		if r != nil {
			cpu0 = r.cpu()
		}
		var prof sync.WaitGroup
		if r != nil && r.debug != "" {
			// CPU profile and execution trace of the router while it runs at this rate.
			base := fmt.Sprintf("%s-%s-%d", b.o.profile, name, rate)
			prof.Go(func() { saveProfile(r.debug, "profile?seconds=2", base+".pprof") })
			prof.Go(func() {
				saveProfile(r.debug, fmt.Sprintf("trace?seconds=%d", int(b.o.latDur.Seconds())), base+".trace")
			})
		}
		sent, err := sendPaced(ctx, c, rate, b.o.latDur)
		prof.Wait()
		if err != nil {
			return nil, err
		}
		got, _, err := waitCount(ctx, []*sink{s}, before+int64(sent), 3*time.Second)
		if err != nil {
			return nil, err
		}
		samples := s.takeSamples()
		if b.o.stalls {
			logStalls(samples, rate)
		}
		sortInt64(samples)
		l := latency{Relay: name, Rate: rate, Sent: sent, Delivered: int(got - before),
			P50: percentile(samples, 0.50), P99: percentile(samples, 0.99), Max: percentile(samples, 1)}
		if r != nil {
			l.CPUus = float64((r.cpu() - cpu0).Microseconds()) / float64(max(sent, 1))
		}
		log.Printf("%-8s latency at %d msg/s: p50 %s p99 %s max %s (%d/%d delivered, %.2f CPU-µs/msg)",
			name, rate, l.P50, l.P99, l.Max, l.Delivered, l.Sent, l.CPUus)
		out = append(out, l)
	}
	return out, nil
}

// history fills o.apps apps with 1500 lines each (no drains) and measures the
// router's RSS growth per buffered line.
func (b *bench) history(ctx context.Context) (*historyMem, error) {
	r, err := b.startRouter(ctx, nil, b.o.apps, false, 1024)
	if err != nil {
		return nil, err
	}
	defer r.stop()
	h := &historyMem{Apps: b.o.apps}
	time.Sleep(500 * time.Millisecond)
	_, h.RSSBefore = r.memory()
	n, err := sendHistory(ctx, r.addr, b.o.apps)
	if err != nil {
		return nil, err
	}
	h.Messages = n
	deadline := time.Now().Add(60 * time.Second)
	for {
		in, fp, err := scrape(r.admin)
		if err != nil {
			return nil, err
		}
		if in >= float64(n) {
			h.Footprint = int64(fp)
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("router ingested %.0f of %d lines", in, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let the garbage of ingest be collected and returned, as it would be in a
	// router that holds full histories for a while.
	time.Sleep(3 * time.Second)
	_, h.RSSAfter = r.memory()
	log.Printf("history: %d lines in %d apps: RSS %d -> %d MiB (%.0f B/line), structure %.0f B/line",
		n, h.Apps, h.RSSBefore>>20, h.RSSAfter>>20, float64(h.RSSAfter-h.RSSBefore)/float64(n), float64(h.Footprint)/float64(n))
	return h, nil
}

func saveProfile(addr, what, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + what)
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	defer func() { _ = resp.Body.Close() }() // read-only; io.Copy reports read errors
	f, err := os.Create(path)
	if err != nil {
		log.Printf("profile: %v", err)
		return
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		log.Printf("profile: %v", err)
	}
}

// scrape sums messages in and history bytes over apps from /metrics.
func scrape(addr string) (in, footprint float64, err error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, 0, fmt.Errorf("scrape router: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only; the scanner reports read errors
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		switch {
		case strings.HasPrefix(line, "kubeplex_router_app_messages_in_total{"):
			in += v
		case strings.HasPrefix(line, "kubeplex_router_app_history_bytes{"):
			footprint += v
		}
	}
	return in, footprint, sc.Err()
}

// skip reports whether -only, -match or a missing -baseline leaves sc out.
func (b *bench) skip(sc scenario) bool {
	switch {
	case b.o.only != "" && sc.relay != b.o.only:
		return true
	case sc.relay == relayBaseline && b.o.baseline == "":
		return true
	}
	return b.o.match != nil && !b.o.match.MatchString(sc.String())
}

// logShortfall names where a run's missing lines went, from the router's /metrics:
// shed by its queue (dropped, and announced in-band), lost on a drain connection
// (errors), or never read (ingested short of sent).
func logShortfall(r *relay, short int64) {
	if r == nil || r.admin == "" || short <= 0 {
		return
	}
	c, err := scrapeSums(r.admin)
	if err != nil {
		log.Printf("  short by %d: %v", short, err)
		return
	}
	log.Printf("  short by %d: router ingested %.0f, offered %.0f, delivered %.0f, dropped %.0f, announced %.0f, "+
		"drain errors %.0f, queued %.0f", short, c["ingest_messages_total"], c["drain_messages_offered_total"],
		c["drain_messages_delivered_total"], c["drain_messages_dropped_total"], c["drain_drops_announced_total"],
		c["drain_errors_total"], c["drain_queue_depth"])
}

// scrapeSums sums every kubeplex_router_ series of /metrics by name (prefix cut).
func scrapeSums(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape router: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only; the scanner reports read errors
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "kubeplex_router_")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		name := line[:i]
		if k := strings.IndexByte(name, '{'); k >= 0 {
			name = name[:k]
		}
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		out[name] += v
	}
	return out, sc.Err()
}

// selfCPU returns the user+system CPU time of this process: load generator and sinks.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// logStalls prints each run of messages slower than 1 ms (a stall): where in the run
// it started, how many messages it held up and the worst latency, so stalls can be
// matched with a trace (-router-cpuprofile).
func logStalls(samples []int64, rate int) {
	start, in := 0, false
	for i, v := range samples {
		switch {
		case v > int64(time.Millisecond) && !in:
			start, in = i, true
		case v < int64(500*time.Microsecond) && in:
			in = false
			log.Printf("stall at +%.3fs: %d messages, worst %v", float64(start)/float64(rate), i-start,
				time.Duration(slices.Max(samples[start:i])))
		}
	}
}
