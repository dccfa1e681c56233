// Command collector-bench measures the collector's footprint: a worker printing a fixed number
// of lines per second runs once alone and once under `collector run`, shipping to a
// logplex-1 receiver in this process; the collector's peak RSS and CPU are sampled
// from /proc and the result is written to the "## Collector" section of
// docs/benchmarks.md.
//
//	go run ./hack/bench/collector -doc docs/benchmarks.md      (make bench-collector)
//	go run ./hack/bench/collector worker -rate 10000 -duration 30s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/hack/bench/benchdoc"
	"github.com/kubeplex/kubeplex/internal/wire"
)

type options struct {
	collector string
	rate      int
	duration  time.Duration
	lineBytes int
	doc       string
	gzip      bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		if err := worker(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench worker:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.collector, "collector", "", "collector binary (default: build ./cmd/collector)")
	flag.IntVar(&o.rate, "rate", 10000, "worker lines per second")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long the worker prints")
	flag.IntVar(&o.lineBytes, "line-bytes", 100, "bytes per line")
	flag.StringVar(&o.doc, "doc", "", "write the results into this markdown file's ## Collector section")
	flag.BoolVar(&o.gzip, "gzip", false, "ship gzip batches")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// worker prints rate lines per second, one write per line as an unbuffered logger
// does, paced in 10 ms ticks.
func worker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	rate := fs.Int("rate", 10000, "lines per second")
	duration := fs.Duration("duration", 30*time.Second, "how long")
	lineBytes := fs.Int("line-bytes", 100, "bytes per line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	const tick = 10 * time.Millisecond
	perTick := *rate / int(time.Second/tick)
	ticks := int(*duration / tick)
	line := make([]byte, *lineBytes)
	start := time.Now()
	n := 0
	// A fixed count, not a deadline: the bench compares it with what was delivered.
	for i := 0; i < ticks; i++ {
		for j := 0; j < perTick; j++ {
			prefix := strconv.AppendInt(line[:0], int64(n), 10)
			for k := len(prefix); k < len(line)-1; k++ {
				line[k] = 'x'
			}
			line[len(line)-1] = '\n'
			if _, err := os.Stdout.Write(line); err != nil {
				return err
			}
			n++
		}
		// Sleep to the next tick boundary so drift does not accumulate.
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * tick)))
	}
	return nil
}

type result struct {
	load      string        // /proc/loadavg's first three fields at the start
	workerCPU time.Duration // the worker alone
	sent      int64
	binary    int64
	collectorRun
	// The same worker under the collector with runtime metrics every 20 s (the
	// default a LogApp's spec.runtimeMetrics turns on) and every 100 ms (enough
	// samples to see one's cost through the run-to-run noise).
	metrics20s, metrics100ms collectorRun
}

// collectorRun is one run of the worker under the collector.
type collectorRun struct {
	totalCPU      time.Duration // collector + worker
	collectorCPU  time.Duration // the collector's own threads
	peakRSS       int64         // bytes, collector only
	lines         int64         // lines the receiver got
	samples       int64         // runtime-metrics lines the receiver got
	wall          time.Duration
	dropped, lost int
}

func run(ctx context.Context, o options) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	if o.collector == "" {
		dir, err := os.MkdirTemp("", "bench-collector-")
		if err != nil {
			return fmt.Errorf("create temp dir: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }() // best effort: a leftover temp dir harms nothing
		o.collector = filepath.Join(dir, "collector")
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", o.collector, "github.com/kubeplex/kubeplex/cmd/collector")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build collector: %w\n%s", err, out)
		}
	}
	st, err := os.Stat(o.collector)
	if err != nil {
		return fmt.Errorf("stat collector: %w", err)
	}
	workerArgs := []string{self, "worker", "-rate", strconv.Itoa(o.rate), "-duration", o.duration.String(),
		"-line-bytes", strconv.Itoa(o.lineBytes)}

	var res result
	res.binary = st.Size()
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(la)); len(f) >= 3 {
			res.load = strings.Join(f[:3], " ")
		}
	}
	res.sent = int64(o.rate/100) * int64(o.duration/(10*time.Millisecond))

	// 1. The worker alone. Its stdout is a pipe drained by this process, as a
	// container runtime's would be (a pipe write costs more than /dev/null's).
	alone := exec.CommandContext(ctx, workerArgs[0], workerArgs[1:]...)
	alone.Stdout = io.Discard
	if err := alone.Run(); err != nil {
		return fmt.Errorf("run worker alone: %w", err)
	}
	res.workerCPU = cpu(alone.ProcessState)

	// 2. The same worker under the collector, shipping to a receiver in this process;
	// then twice more with runtime metrics on, in the same run of the bench.
	for _, r := range []struct {
		every string
		into  *collectorRun
	}{{"0", &res.collectorRun}, {"20s", &res.metrics20s}, {"100ms", &res.metrics100ms}} {
		if *r.into, err = underCollector(ctx, o, workerArgs, r.every); err != nil {
			return err
		}
	}

	report := format(o, res)
	fmt.Print(report)
	if o.doc != "" {
		if err := benchdoc.WriteSection(o.doc, "## Collector", report); err != nil {
			return err
		}
	}
	return nil
}

// underCollector runs the worker under `collector run` with --runtime-metrics every
// (0: off), shipping to a receiver in this process, and samples the collector.
func underCollector(ctx context.Context, o options, workerArgs []string, every string) (collectorRun, error) {
	var res collectorRun
	recv, err := newReceiver()
	if err != nil {
		return res, err
	}
	defer recv.close()
	args := append([]string{"run", "--runtime-metrics", every, "--"}, workerArgs...)
	c := exec.CommandContext(ctx, o.collector, args...)
	c.Env = append(os.Environ(), "KUBEPLEX_ROUTER_URL="+recv.url, "KUBEPLEX_TOKEN=t.bench", "KUBEPLEX_PROCESS=bench.1",
		"KUBEPLEX_GZIP="+strconv.FormatBool(o.gzip))
	c.Stdout = io.Discard // the copy kubectl logs would read, drained here too
	start := time.Now()
	if err := c.Start(); err != nil {
		return res, fmt.Errorf("start collector: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var lastCPU time.Duration
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				return res, fmt.Errorf("collector: %w", err)
			}
			waiting = false
		case <-tick.C:
			if rss, cpuSelf, err := sample(c.Process.Pid); err == nil {
				res.peakRSS = max(res.peakRSS, rss)
				lastCPU = cpuSelf
			}
		}
	}
	res.wall = time.Since(start)
	res.totalCPU = cpu(c.ProcessState)
	// /proc/PID/stat counts the collector's own threads only (the worker is a separate
	// process); the last sample is at most 200 ms before the end.
	res.collectorCPU = lastCPU
	res.lines, res.samples = recv.lines.Load(), recv.samples.Load()
	res.dropped, res.lost = int(recv.dropped.Load()), int(recv.lost.Load())
	if every != "0" && res.samples == 0 {
		return res, fmt.Errorf("runtime metrics every %s: no sample line reached the receiver (%s)", every, strings.Join(recv.warnings(), "; "))
	}
	return res, nil
}

func cpu(ps *os.ProcessState) time.Duration { return ps.UserTime() + ps.SystemTime() }

// sample reads a process's resident set and its own CPU time from /proc.
func sample(pid int) (rss int64, cpuTime time.Duration, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read status: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read stat: %w", err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, 0, errors.New("short stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return rss, time.Duration(ut+stt) * time.Second / hz, nil
}

type receiver struct {
	url                           string
	srv                           *http.Server
	lines, dropped, lost, samples atomic.Int64
	mu                            sync.Mutex
	warned                        []string
}

func (r *receiver) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.warned
}

func newReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/logs"}
	r.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := wire.ReadBatch(req, 0, 0, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rec := range b.Records {
			f, _ := wire.Scan(rec)
			if string(f.AppName) == "app" {
				r.lines.Add(1)
				continue
			}
			if bytes.Contains(f.Text, []byte("sample#memory_total=")) {
				r.samples.Add(1)
				continue
			}
			if bytes.HasPrefix(f.Text, []byte("Warning: ")) {
				r.mu.Lock()
				r.warned = append(r.warned, string(f.Text))
				r.mu.Unlock()
			}
			for _, p := range []struct {
				prefix string
				n      *atomic.Int64
			}{{"Error L12: ", &r.dropped}, {"Error L13: ", &r.lost}} {
				if rest, ok := bytes.CutPrefix(f.Text, []byte(p.prefix)); ok {
					if i := bytes.IndexByte(rest, ' '); i > 0 {
						n, _ := strconv.Atoi(string(rest[:i]))
						p.n.Add(int64(n))
					}
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() { _ = r.srv.Close() }

func format(o options, r result) string {
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / o.duration.Seconds() }
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench-collector` (`go run ./hack/bench/collector -doc docs/benchmarks.md`) on %s, %d CPUs, %s.\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "A worker prints %d lines/s of %d bytes (one write per line) for %s; once alone, once under\n",
		o.rate, o.lineBytes, o.duration)
	fmt.Fprintf(&b, "`collector run`, which copies the output to its own stdout and ships it (gzip %v) to a\n", o.gzip)
	b.WriteString("logplex-1 receiver on 127.0.0.1. CPU is user+system time over the worker's run, as a share of one core.\n")
	b.WriteString("Both stdouts are pipes drained by the bench, as a container runtime's would be. On these shared 2-core\n")
	b.WriteString("machines timings vary by up to ±30% run to run; RSS does not.\n\n")
	b.WriteString("| measure | value | goal |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| collector peak RSS (VmRSS, sampled every 200 ms) | %.1f MiB | ≤ 15 MiB |\n", float64(r.peakRSS)/(1<<20))
	fmt.Fprintf(&b, "| collector CPU (its own threads, /proc) | %.1f%% of a core (%.2f s) | ≤ 5%% |\n",
		pct(r.collectorCPU), r.collectorCPU.Seconds())
	fmt.Fprintf(&b, "| extra CPU: (worker + collector) − worker alone | %.1f%% of a core | ≤ 5%% |\n", pct(r.totalCPU-r.workerCPU))
	fmt.Fprintf(&b, "| worker alone CPU | %.1f%% of a core (%.2f s) | |\n", pct(r.workerCPU), r.workerCPU.Seconds())
	fmt.Fprintf(&b, "| worker + collector CPU | %.1f%% of a core (%.2f s) | |\n", pct(r.totalCPU), r.totalCPU.Seconds())
	fmt.Fprintf(&b, "| CPU per line (collector) | %.2f µs | |\n", float64(r.collectorCPU.Microseconds())/float64(max(r.sent, 1)))
	fmt.Fprintf(&b, "| lines printed / delivered / L12 / L13 | %d / %d / %d / %d | all accounted |\n", r.sent, r.lines, r.dropped, r.lost)
	fmt.Fprintf(&b, "| collector binary (`-trimpath`, not stripped) | %.1f MiB | |\n", float64(r.binary)/(1<<20))
	fmt.Fprintf(&b, "| wall time under the collector | %.1f s | |\n", r.wall.Seconds())

	// Runtime metrics: the same worker, the same run of the bench.
	b.WriteString("\nRuntime metrics (`--runtime-metrics`, what a LogApp's `spec.runtimeMetrics: true` turns on at 20 s): the same\n")
	b.WriteString("worker under the collector again, in the same run, with a cgroup read and a `sample#…` line every 20 s, then\n")
	b.WriteString("every 100 ms (a sample's cost is below the run-to-run noise at 20 s; at 100 ms there are enough of them to see it).\n\n")
	b.WriteString("| runtime metrics | collector CPU | peak RSS | samples delivered | CPU per sample |\n|---|---|---|---|---|\n")
	perSample := func(m collectorRun) string {
		switch {
		case m.samples == 0:
			return ""
		case m.samples < 100:
			return "(below the noise)"
		}
		return fmt.Sprintf("%.0f µs", float64((m.collectorCPU-r.collectorCPU).Microseconds())/float64(m.samples))
	}
	for _, m := range []struct {
		name string
		run  collectorRun
	}{{"off", r.collectorRun}, {"every 20 s", r.metrics20s}, {"every 100 ms", r.metrics100ms}} {
		fmt.Fprintf(&b, "| %s | %.1f%% of a core (%.2f s) | %.1f MiB | %d | %s |\n", m.name, pct(m.run.collectorCPU),
			m.run.collectorCPU.Seconds(), float64(m.run.peakRSS)/(1<<20), m.run.samples, perSample(m.run))
	}
	if m := r.metrics100ms; m.samples >= 100 {
		each := (m.collectorCPU - r.collectorCPU).Seconds() / float64(m.samples)
		fmt.Fprintf(&b, "\nSo one sample every 20 s costs about %.4f%% of a core (%.0f µs per sample) and no memory that shows;\n",
			100*each/20, each*1e6)
		b.WriteString("the 20 s run's difference from \"off\" is the machine's noise. CPU is counted in 10 ms ticks.\n")
	}
	fmt.Fprintf(&b, "Load average when the bench started: %s (other engineers' builds share these 2 CPUs).\n", r.load)
	return b.String()
}
