package reliability

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
)

// Fleet generates for many apps at once: every Tick, each app posts Batch lines
// (its own sequence numbers from 0) with its own ingest token, from Workers
// goroutines sharing one keep-alive client. Posts that fail are counted as refused
// and their lines are not sent (the generator retries the same sequence numbers).
type Fleet struct {
	URL     string
	Tokens  []string // one per app
	Apps    []string
	Batch   int
	Tick    time.Duration
	Workers int

	next    []atomic.Int64
	busy    []sync.Mutex // one post per app at a time: its sequence numbers go in order
	refused atomic.Int64
	skipped atomic.Int64
	client  *http.Client

	mu   sync.Mutex
	lats []Sample // POST round trips, for percentiles
	max  time.Duration
}

// Sample is one request's round trip, from its start.
type Sample struct {
	At time.Time
	D  time.Duration
}

// Run posts until ctx ends; a second Run goes on with the next sequence numbers.
func (f *Fleet) Run(ctx context.Context) {
	if f.next == nil {
		f.next = make([]atomic.Int64, len(f.Apps))
		f.busy = make([]sync.Mutex, len(f.Apps))
		f.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: f.Workers, MaxConnsPerHost: f.Workers}}
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range f.Workers {
		wg.Go(func() {
			for i := range work {
				f.post(i)
			}
		})
	}
	t := time.NewTicker(f.Tick)
	defer t.Stop()
loop:
	for {
		for i := range f.Apps {
			select {
			case work <- i:
			case <-ctx.Done():
				break loop
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			break loop
		}
	}
	close(work)
	wg.Wait()
	f.client.CloseIdleConnections()
}

func (f *Fleet) post(i int) {
	// An app whose previous post is still out skips this tick: two posts of one app
	// at once would send the same sequence numbers twice and skip the next ones.
	if !f.busy[i].TryLock() {
		f.skipped.Add(1)
		return
	}
	defer f.busy[i].Unlock()
	from := int(f.next[i].Load())
	var body []byte
	now := time.Now().UTC().Format(wire.TimeLayout)
	for k := range f.Batch {
		body = wire.AppendFrame(body, fmt.Appendf(nil, "<190>1 %s h app web.1 - - %s", now, Line(f.Apps[i], from+k)))
	}
	req, err := http.NewRequest(http.MethodPost, f.URL, bytes.NewReader(body))
	if err != nil {
		f.refused.Add(1)
		return
	}
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set(wire.HeaderMsgCount, strconv.Itoa(f.Batch))
	req.SetBasicAuth("token", f.Tokens[i])
	start := time.Now()
	resp, err := f.client.Do(req)
	d := time.Since(start)
	if err != nil {
		f.refused.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close() // read to the end
	if resp.StatusCode != http.StatusNoContent {
		f.refused.Add(1)
		return
	}
	f.next[i].Add(int64(f.Batch))
	f.mu.Lock()
	if len(f.lats) < 1<<20 {
		f.lats = append(f.lats, Sample{start, d})
	}
	f.max = max(f.max, d)
	f.mu.Unlock()
}

// Sent is how many lines of app i the router accepted.
func (f *Fleet) Sent(i int) int { return int(f.next[i].Load()) }

// Skipped is how many ticks an app skipped because its previous post was still out.
func (f *Fleet) Skipped() int64 { return f.skipped.Load() }

// Refused is how many posts failed.
func (f *Fleet) Refused() int64 { return f.refused.Load() }

// ResetLatency forgets the round trips measured so far.
func (f *Fleet) ResetLatency() {
	f.mu.Lock()
	f.lats, f.max = nil, 0
	f.mu.Unlock()
}

// Latency returns the p99 and the worst POST round trip.
func (f *Fleet) Latency() (p99, worst time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lats) == 0 {
		return 0, 0
	}
	return Distribution(f.lats).P99, f.max
}

// Samples returns the round trips measured since the last ResetLatency.
func (f *Fleet) Samples() []Sample {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lats)
}

// Dist summarises round trips.
type Dist struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
	Over10ms                 int
}

// Distribution summarises ss.
func Distribution(ss []Sample) Dist {
	if len(ss) == 0 {
		return Dist{}
	}
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = s.D
	}
	slices.Sort(ds)
	at := func(p int) time.Duration { return ds[min(len(ds)-1, len(ds)*p/1000)] }
	d := Dist{N: len(ds), P50: at(500), P90: at(900), P99: at(990), P999: at(999), Max: ds[len(ds)-1]}
	d.Over10ms = len(ds) - sort.Search(len(ds), func(i int) bool { return ds[i] > 10*time.Millisecond })
	return d
}

func (d Dist) String() string {
	r := func(x time.Duration) time.Duration { return x.Round(10 * time.Microsecond) }
	return fmt.Sprintf("n %d, p50 %v, p90 %v, p99 %v, p99.9 %v, worst %v, > 10 ms %d",
		d.N, r(d.P50), r(d.P90), r(d.P99), r(d.P999), r(d.Max), d.Over10ms)
}

// Probe sends GET url every period on its own connection until ctx ends and
// returns the round trips: a no-op handler of the server under test, measured from
// the same process as its real requests, tells the two processes' scheduling (and
// the loopback) from the real handler's own time.
func Probe(ctx context.Context, url string, period time.Duration) []Sample {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer c.CloseIdleConnections()
	var out []Sample
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close() // read to the end
		if len(out) < 1<<20 {
			out = append(out, Sample{start, time.Since(start)})
		}
	}
}

// Overlapping counts the samples of slow over limit during which one of probe's
// samples over limit was out too: slow requests the no-op probe shared.
func Overlapping(slow, probe []Sample, limit time.Duration) (over, shared int) {
	for _, s := range slow {
		if s.D <= limit {
			continue
		}
		over++
		for _, p := range probe {
			if p.D > limit && p.At.Before(s.At.Add(s.D)) && s.At.Before(p.At.Add(p.D)) {
				shared++
				break
			}
		}
	}
	return over, shared
}

// ProcStat is a sample of a process's resources from /proc.
type ProcStat struct {
	At  time.Time
	RSS int64 // bytes
	FDs int
	// Threads is the kernel's count; Goroutines comes from the router's /metrics.
	Threads    int
	Goroutines int
	HeapInuse  int64 // go_memstats_heap_inuse_bytes: live heap, to tell from RSS
}

// ReadProc samples pid.
func ReadProc(pid int) (ProcStat, error) {
	st := ProcStat{At: time.Now()}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			st.RSS = n << 10
		case "Threads":
			st.Threads = int(n)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return st, err
	}
	st.FDs = len(fds)
	return st, sc.Err()
}

// GoStats reads go_goroutines and go_memstats_heap_inuse_bytes from a Prometheus
// text endpoint into st.
func GoStats(metricsURL string, st *ProcStat) error {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := 0
	for sc.Scan() {
		name, v, _ := strings.Cut(sc.Text(), " ")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case name == "go_goroutines" && err == nil:
			st.Goroutines = int(f)
			found++
		case name == "go_memstats_heap_inuse_bytes" && err == nil:
			st.HeapInuse = int64(f)
			found++
		}
	}
	if found < 2 {
		return fmt.Errorf("no go_goroutines or go_memstats_heap_inuse_bytes in %s", metricsURL)
	}
	return sc.Err()
}

// Metric reads one metric from a Prometheus text endpoint: name is the metric's
// name with its labels as they are written (`x{drain="a/b"}`), or without any.
func Metric(metricsURL, name string) (float64, error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in %s", name, metricsURL)
}
