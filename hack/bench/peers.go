package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// relay is a process under test (router or rsyslogd) that reads frames on addr.
type relay struct {
	name  string
	cmd   *exec.Cmd
	addr  string
	http  string // router only
	admin string // router only: /status, /metrics
	debug string // router pprof address, when profiling
	done  chan struct{}
	out   *os.File
	// threads is the latest schedstat run time seen per thread id (cpu).
	mu      sync.Mutex
	threads map[string]int64
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	return addr, nil
}

func (b *bench) startProcess(name string, env []string, bin string, args ...string) (*relay, error) {
	out, err := os.CreateTemp(b.dir, name+"-*.log")
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	r := &relay{name: name, cmd: cmd, done: make(chan struct{}), out: out}
	go func() { _ = cmd.Wait(); close(r.done) }()
	go r.sampleCPU()
	return r, nil
}

type benchApp struct {
	ID      string          `json:"id"`
	History int             `json:"history"`
	Tokens  []benchToken    `json:"tokens"`
	Drains  []benchDrainCfg `json:"drains,omitempty"`
}
type benchToken struct {
	Token  string `json:"token"`
	Source string `json:"source"`
}
type benchDrainCfg struct {
	ID          string `json:"id"`
	Token       string `json:"token"`
	URL         string `json:"url"`
	Compression string `json:"compression,omitempty"`
}

// startRouter runs the router with a table file: apps[i] uses tokens[i]. Without
// everyApp the first app drains to every URL (fan-out); with it every app has one
// drain to urls[0] (many apps).
func (b *bench) startRouter(ctx context.Context, urls []string, apps int, everyApp bool, queue int, env ...string) (*relay, error) {
	return b.startRouterWith(ctx, routerRun{bin: b.o.router, env: env}, urls, apps, everyApp, queue)
}

// routerRun is which router binary runs, with which extra flags and environment.
type routerRun struct {
	bin  string
	args []string
	env  []string
}

func (b *bench) startRouterWith(ctx context.Context, rr routerRun, urls []string, apps int, everyApp bool, queue int) (*relay, error) {
	env := rr.env
	var tbl struct {
		Apps []benchApp `json:"apps"`
	}
	for i := range apps {
		a := benchApp{ID: fmt.Sprintf("bench/app-%05d", i), History: 1500,
			Tokens: []benchToken{{Token: appToken(i), Source: "app"}}}
		switch {
		case everyApp && len(urls) > 0:
			a.Drains = []benchDrainCfg{{ID: fmt.Sprintf("bench/drain-%05d", i),
				Token: fmt.Sprintf("d.00000000-0000-4000-8000-%012d", i), URL: urls[0]}}
		case i == 0:
			for k, u := range urls {
				// "otlp+http://addr#none": the fragment is the OTLP drain's compression.
				u, comp, _ := strings.Cut(u, "#")
				a.Drains = append(a.Drains, benchDrainCfg{ID: fmt.Sprintf("bench/drain-%02d", k),
					Token: fmt.Sprintf("d.00000000-0000-4000-8000-%012d", k), URL: u, Compression: comp})
			}
		}
		tbl.Apps = append(tbl.Apps, a)
	}
	js, err := json.Marshal(tbl)
	if err != nil {
		return nil, fmt.Errorf("encode routes: %w", err)
	}
	routes := filepath.Join(b.dir, "routes.json")
	if err := os.WriteFile(routes, js, 0o600); err != nil {
		return nil, fmt.Errorf("write routes: %w", err)
	}
	in, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--routes", routes, "--http-addr", httpAddr, "--admin-addr", adminAddr,
		"--syslog-tcp-addr", in, "--allow-cidrs", "127.0.0.0/8", "--queue-size", strconv.Itoa(queue),
		"--log-level", "warn", "--shutdown-grace", "2s"}
	args = append(args, rr.args...)
	if b.o.profile != "" {
		args = append(args, "--debug-addr", "127.0.0.1:0", "--log-level", "info")
	}
	if b.o.routerEnv != "" {
		env = append(env, strings.Split(b.o.routerEnv, ",")...)
	}
	r, err := b.startProcess(relayRouter, env, rr.bin, args...)
	if err != nil {
		return nil, err
	}
	r.addr, r.http, r.admin = in, httpAddr, adminAddr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close() // drained; only the status matters
			if resp.StatusCode == 200 {
				if b.o.profile != "" {
					r.debug = debugAddr(r.out.Name())
				}
				return r, nil
			}
			err = fmt.Errorf("/readyz answered %s", resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("router not ready: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rsyslogFwdTemplate re-emits every RFC 5424 header field (section 6), so rsyslog
// does the same formatting work per message as the router.
const rsyslogFwdTemplate = "<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% " +
	"%MSGID% %STRUCTURED-DATA% %msg%"

// startRsyslog runs rsyslogd as a relay: imtcp in, omfwd TCP out with octet-counted
// framing and an RFC 5424 template that re-emits every header field.
func (b *bench) startRsyslog(ctx context.Context, sink string) (*relay, error) {
	in, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, inPort, _ := net.SplitHostPort(in)
	sh, sp, _ := net.SplitHostPort(sink)
	work, err := os.MkdirTemp(b.dir, "rsyslog")
	if err != nil {
		return nil, fmt.Errorf("create rsyslog dir: %w", err)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q maxMessageSize="64k")
module(load="imtcp")
template(name="fwd" type="string" string=%q)
ruleset(name="relay") {
  action(type="omfwd" target=%q port=%q protocol="tcp" TCP_Framing="octet-counted" template="fwd")
}
input(type="imtcp" address="127.0.0.1" port=%q ruleset="relay")
`, work, rsyslogFwdTemplate, sh, sp, inPort)
	confPath := filepath.Join(work, "rsyslog.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write rsyslog config: %w", err)
	}
	r, err := b.startProcess(relayRsyslog, nil, b.o.rsyslogd, "-n", "-f", confPath, "-i", filepath.Join(work, "pid"))
	if err != nil {
		return nil, err
	}
	r.addr = in
	if err := waitListening(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// startCopy runs this binary as the copy relay in front of sink.
func (b *bench) startCopy(ctx context.Context, sink string) (*relay, error) {
	in, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	r, err := b.startProcess(relayCopy, nil, self, "-copy-relay", in, "-copy-to", sink)
	if err != nil {
		return nil, err
	}
	r.addr = in
	return r, waitListening(ctx, r)
}

// waitListening waits until r accepts connections on r.addr.
func waitListening(ctx context.Context, r *relay) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr, time.Second)
		if err == nil {
			_ = c.Close() // a probe: the relay accepted, which is all it was for
			return nil
		}
		select {
		case <-r.done:
			b, _ := os.ReadFile(r.out.Name())
			return fmt.Errorf("%s exited: %s", r.name, b)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return fmt.Errorf("%s not listening: %w", r.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *relay) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	_ = r.out.Close() // the process wrote its log through its own descriptor; ours is only read by name
}

// cpu returns the CPU time of the process so far: the sum over its threads of the
// time they ran (/proc/PID/task/*/schedstat, nanoseconds, user and kernel), which
// unlike /proc/PID/stat's 10 ms ticks resolves a short run at a low rate. A thread
// that exits keeps the time last seen for it: the relay's sampler (every 20 ms) keeps
// that loss small for relays that start and stop threads.
func (r *relay) cpu() time.Duration {
	r.sample()
	r.mu.Lock()
	defer r.mu.Unlock()
	var sum int64
	for _, ns := range r.threads {
		sum += ns
	}
	return time.Duration(sum)
}

func (r *relay) sample() {
	pid := r.cmd.Process.Pid
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.threads == nil {
		r.threads = map[string]int64{}
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil && ns > r.threads[t.Name()] {
			r.threads[t.Name()] = ns
		}
	}
}

// sampleCPU samples the relay's threads until it exits (see cpu).
func (r *relay) sampleCPU() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-t.C:
			r.sample()
		}
	}
}

// memory returns VmHWM (peak RSS) and VmRSS in bytes.
func (r *relay) memory() (peak, cur int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", r.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			peak = n << 10
		case "VmRSS":
			cur = n << 10
		}
	}
	return peak, cur
}

// sink counts octet-counted frames and, when asked, records per-frame latency from
// the send time the generator put in the last 19 bytes of each message.
//
// It is built to cost as little as possible per frame, because in the fan-out runs it
// receives ten frames for every one the relay reads, on the same CPUs: it reads large
// blocks, follows the octet counts without looking inside records (the router's tests
// check content; here only counts and timing matter), and reads the clock, updates
// the shared counters and stamps the receive time once per read, not per frame. All
// frames that one read returns arrived by the time it returned, so that time is their
// receive time.
type sink struct {
	ln      net.Listener
	Addr    string
	count   atomic.Int64
	last    atomic.Int64 // unix nanos of the latest read that completed a frame
	latency atomic.Bool
	mu      sync.Mutex
	samples []int64
	live    sync.Map
}

func newSink() (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen sink: %w", err)
	}
	s := &sink{ln: ln, Addr: ln.Addr().String()}
	go s.serve()
	return s, nil
}

func (s *sink) close() {
	_ = s.ln.Close()
	s.live.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
}

func (s *sink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.live.Store(c, true)
		go s.read(c)
	}
}

// frameScanner follows "<len> <record>" frames across reads. A tolerant fast path,
// not a validating parser: stray LFs between frames are skipped.
type frameScanner struct {
	inLen  bool // reading the length digits
	n      int  // length being read
	left   int  // record bytes still to skip
	tail   [19]byte
	stamps []int64 // send times of completed frames, when latency is on
}

func (f *frameScanner) scan(p []byte, latency bool) (frames int) {
	for i := 0; i < len(p); {
		if f.left == 0 {
			ch := p[i]
			i++
			switch {
			case ch == ' ' && f.inLen:
				f.inLen, f.left = false, f.n
				if f.left == 0 {
					frames++
				}
			case ch >= '0' && ch <= '9':
				if !f.inLen {
					f.inLen, f.n = true, 0
				}
				f.n = f.n*10 + int(ch-'0')
			}
			continue
		}
		k := min(f.left, len(p)-i)
		if latency {
			// Keep the record's last 19 bytes, which may arrive in two reads: the byte
			// x into this piece has f.left-x bytes of the record from it on.
			for x := max(0, f.left-19); x < k; x++ {
				f.tail[19-(f.left-x)] = p[i+x]
			}
		}
		i += k
		f.left -= k
		if f.left == 0 {
			frames++
			if latency && f.n >= 19 {
				if sent, ok := digits19(f.tail[:]); ok {
					f.stamps = append(f.stamps, sent)
				}
			}
		}
	}
	return frames
}

func (s *sink) read(c net.Conn) {
	defer func() { _ = c.Close(); s.live.Delete(c) }()
	buf := make([]byte, 256<<10)
	var f frameScanner
	var local []int64
	for {
		n, err := c.Read(buf)
		if n > 0 {
			now := time.Now().UnixNano()
			frames := f.scan(buf[:n], s.latency.Load())
			if frames > 0 {
				for _, sent := range f.stamps {
					local = append(local, now-sent)
				}
				f.stamps = f.stamps[:0]
				// Hand the samples over before the count moves: a run ends when the count
				// says all its frames arrived, and its samples must all be in by then, not
				// spill into the next rate's percentiles.
				s.flush(local)
				local = local[:0]
				s.count.Add(int64(frames))
				s.last.Store(now)
			}
		}
		if err != nil {
			s.flush(local)
			return
		}
	}
}

// digits19 reads the generator's 19-digit send time without allocating, so the
// harness adds no garbage collection to what it measures.
func digits19(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func (s *sink) flush(l []int64) {
	if len(l) == 0 {
		return
	}
	s.mu.Lock()
	s.samples = append(s.samples, l...)
	s.mu.Unlock()
}

func (s *sink) takeSamples() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

func percentile(sorted []int64, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return time.Duration(sorted[i])
}

func sortInt64(a []int64) { sort.Slice(a, func(i, j int) bool { return a[i] < a[j] }) }

// waitCount waits until total reaches want or stops moving for idle; it returns the
// final count and the time of the last frame.
func waitCount(ctx context.Context, sinks []*sink, want int64, idle time.Duration) (int64, time.Time, error) {
	var lastTotal int64 = -1
	lastMove := time.Now()
	for {
		var total, last int64
		for _, s := range sinks {
			total += s.count.Load()
			if l := s.last.Load(); l > last {
				last = l
			}
		}
		if total >= want {
			return total, time.Unix(0, last), nil
		}
		if total != lastTotal {
			lastTotal, lastMove = total, time.Now()
		} else if time.Since(lastMove) > idle {
			return total, time.Unix(0, last), nil
		}
		select {
		case <-ctx.Done():
			return total, time.Unix(0, last), ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// debugAddr reads the pprof address from the router's "router serving" log line.
func debugAddr(logFile string) string {
	for range 100 {
		b, _ := os.ReadFile(logFile)
		for _, line := range strings.Split(string(b), "\n") {
			var l struct {
				Addrs map[string]string `json:"addrs"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Addrs["debug"] != "" {
				return l.Addrs["debug"]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}
