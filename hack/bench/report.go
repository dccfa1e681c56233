package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// find returns the plain syslog row (one app, block writes unless perWrite).
func (r *report) find(relay string, conns, drains int) *throughput {
	return r.findW(relay, conns, drains, 0)
}

func (r *report) findW(relay string, conns, drains, perWrite int) *throughput {
	for i := range r.Throughput {
		t := &r.Throughput[i]
		if t.Relay == relay && t.Conns == conns && t.Drains == drains && t.PerWrite == perWrite && !t.HTTP && t.OTLP == "" && t.Apps == 0 {
			return t
		}
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func relayName(r string) string {
	switch r {
	case relayLoopback:
		return "raw loopback (ceiling)"
	case relayCopy:
		return "copy relay (floor of one process hop)"
	case relayRouter:
		return "router (GOMAXPROCS=2, default here)"
	case relayRouter1P:
		return "router (GOMAXPROCS=1)"
	case relayRouterNoCo:
		return "router, coalescing off (--syslog-coalesce=0)"
	case relayBaseline:
		return "router, -baseline binary"
	}
	return r
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func rsyslogVersion() string {
	out, err := exec.Command("/usr/sbin/rsyslogd", "-v").Output()
	if err != nil {
		return "rsyslog"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	first = strings.TrimSuffix(strings.TrimSpace(first), "compiled with:")
	return strings.Join(strings.Fields(first), " ")
}

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("## Router\n\n")
	w("Written by `make bench` (hack/bench) on %s, %d CPUs, %s; took %s; load average at start %s, at end %s\n",
		time.Now().UTC().Format("2006-01-02"), r.CPUs, rsyslogVersion(), r.Took.Round(time.Second), r.Load, r.LoadEnd)
	w("(other work on the machine shows up in every row, loopback included).\n")
	w("The same %d octet-counted RFC 5424 frames of 204 bytes go TCP in → relay → TCP out to a counting sink;\n", r.Messages)
	w("rsyslog runs imtcp → omfwd (TCP, octet-counted, RFC 5424 template re-emitting every header field);\n")
	w("the router runs with one app whose token is the frames' APP-NAME and a syslog:// drain.\n")
	w("Load generator, sink and relay share the machine's CPUs. Throughput is the median of %d runs\n", r.Reps)
	w("(all runs in brackets), from first write to last frame received; CPU is the relay's on-CPU time (per-thread schedstat)\n")
	w("per input message;\n")
	w("harness CPU is the load generator's and sinks' (this process's) per delivered frame, kernel time included;\n")
	w("both relays get a 100,000-message queue. Numbers vary by up to ±30%% run to run: compare within one run.\n\n")
	w("The sink follows octet counts over 256 KiB reads without parsing records (the router's tests check content)\n")
	w("and reads the clock once per read, so it costs about 0.1 CPU-µs per frame: the raw loopback row with 10 drains\n")
	w("(the same frames written straight to 10 sinks) is what the harness itself can take, the ceiling for fan-out.\n\n")

	r.throughputTables(w)
	w("\n### Latency at fixed rates (1 connection, send → sink receive)\n\n")
	w("Each rate runs %s, %d times, on one connection per relay that first carried 0.5 s of warm-up traffic (the first\n", r.LatDur, r.Reps)
	w("messages of a fresh relay pay for dialling its drain); the repetitions go round the relays (A B C A B C ...). The row\n")
	w("is the run with the median p99 (all p99s listed); CPU is the median over the runs (all listed).\n")
	w("The sender writes each frame with its own write(2) at its due time, as a syslog client does (paced with\n")
	w("nanosleep; Go's timers would round sub-millisecond waits up to 1 ms and turn the sender into a batcher).\n")
	w("Send time is stamped into each frame just before the write; the sink reads the clock once per read.\n")
	w("CPU µs/msg is the relay's on-CPU time (all threads, /proc/PID/task/*/schedstat) over the run per message sent.\n")
	w("The copy relay (this binary copying bytes from one socket to another, no parsing) is the floor under any relay.\n\n")
	w("![CPU-µs/msg and p99 against the rate, per relay](%s)\n\n", chartFile)
	w("| relay | rate msgs/s | p50 | p99 | p99 of all runs | max | CPU µs/msg (median) | CPU of all runs | delivered |\n")
	w("|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range r.Latency {
		cpu, name := fmt.Sprintf("%.2f", l.CPUus), relayName(l.Relay)
		if l.Relay == relayLoopback {
			cpu, name = "—", "raw loopback (harness floor)"
		}
		all := make([]string, 0, len(l.P99s))
		for _, p := range l.P99s {
			all = append(all, p.Round(10*time.Microsecond).String())
		}
		cpus := make([]string, 0, len(l.CPUs))
		for _, c := range l.CPUs {
			cpus = append(cpus, fmt.Sprintf("%.2f", c))
		}
		if l.Relay == relayLoopback {
			cpus = []string{"—"}
		}
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %d/%d |\n", name, l.Rate, l.P50.Round(time.Microsecond),
			l.P99.Round(time.Microsecond), strings.Join(all, ", "), l.Max.Round(time.Microsecond), cpu, strings.Join(cpus, ", "),
			l.Delivered, l.Sent)
	}
	if h := r.History; h != nil {
		w("\n### History memory\n\n")
		w("%d apps × 1500 lines of 204-byte frames (%d lines) held in the router's per-app history, no drains:\n", h.Apps, h.Messages)
		w("RSS %s → %s, **%.0f bytes of RSS per buffered line**; the rings themselves account for %.0f bytes per line\n",
			mib(h.RSSBefore), mib(h.RSSAfter), float64(h.RSSAfter-h.RSSBefore)/float64(h.Messages), float64(h.Footprint)/float64(h.Messages))
		w("(records, 8-byte index slots and chunk slack). At that rate 10,000 apps × 1500 lines need %.1f GiB.\n",
			float64(h.RSSAfter-h.RSSBefore)/float64(h.Messages)*15e6/(1<<30))
	}
	r.goals(w)
	w("\nNotes. The router sheds load by dropping the oldest queued message (Logplex semantics) where rsyslog\n")
	w("pushes back on its input; both get 100,000-message queues (see \"delivered\" for drops).\n")
	w("When a drain is idle the router writes each batch from the ingest goroutine (one non-blocking write per drain,\n")
	w("framed straight from the batch); the drain's own goroutine only takes over what the socket does not accept at once.\n")
	w("Tail latency follows CPU contention on the machine: the router's and the harness's threads wait for a CPU\n")
	w("after being woken (`perf sched` showed waits of 1-5 ms while other builds ran); compare with the copy relay's row\n")
	w("of the same run. See docs/router.md#performance for what was measured and changed.\n")
	w("\nReproduce: `make bench` (or `hack/bench/run.sh`; `BENCH_ARGS=-reps=1` for a quicker run).\n")
	return b.String()
}

func (r *report) throughputTables(w func(string, ...any)) {
	w("### Throughput, TCP in → TCP out\n\n")
	w("Frames per write: 5000 is a shipper writing ~1 MiB blocks; 20 (4 KiB) a collector writing what it read; 1 a syslog\n")
	w("client writing each message as it comes. Small pieces make the relay's reads small too; with one frame per write\n")
	w("the harness's own writer and sink dominate (the loopback row with the same writes has the sink read each piece).\n\n")
	w("| relay | connections | drains | frames per write | msgs/s (median) | runs | CPU µs/msg | harness CPU µs/frame | peak RSS |" +
		" delivered |\n")
	w("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range r.Throughput {
		if t.HTTP || t.OTLP != "" || t.Apps > 0 {
			continue
		}
		cpu, rss := "—", "—"
		if t.Relay != relayLoopback {
			cpu, rss = fmt.Sprintf("%.2f", t.CPUus), mib(t.PeakRSS)
		}
		per := blockLen
		if t.PerWrite > 0 {
			per = t.PerWrite
		}
		w("| %s | %d | %d | %d | %.0f | %s | %s | %.3f | %s | %d/%d |\n", relayName(t.Relay), t.Conns, t.Drains, per, t.Rate,
			runsK(t.Runs), cpu, t.HarnessUs, rss, t.Delivered, t.Sent)
	}
	w("\n### Many apps\n\n")
	w("1 connection, frames rotating over the apps (each frame the next app's: every read holds many apps' batches),\n")
	w("each app with its own syslog drain (its own connection) to one sink. Idle CPU: the same router for 3 s after\n")
	w("the run with every drain connected and nothing sent.\n\n")
	w("| relay | apps × drains | msgs/s (median) | runs | CPU µs/msg | idle CPU | peak RSS | delivered |\n|---|---|---|---|---|---|---|---|\n")
	for _, t := range r.Throughput {
		if t.Apps == 0 {
			continue
		}
		w("| %s | %d × 1 | %.0f | %s | %.2f | %s per s | %s | %d/%d |\n", relayName(t.Relay), t.Apps, t.Rate, runsK(t.Runs),
			t.CPUus, t.IdleCPU.Round(100*time.Microsecond), mib(t.PeakRSS), t.Delivered, t.Sent)
	}
	w("\n### HTTP drains\n\n")
	w("1 connection in (block writes), one app with one https-less `http://` drain into a logplex-1 receiver in the\n")
	w("harness (counts frames by their octet counts; records every request's frame count and how many requests were\n")
	w("open at once). The slow receiver answers each request after the stated delay.\n\n")
	w("| relay | receiver answers after | msgs/s (median) | runs | CPU µs/msg | requests | frames per request (mean / largest) |" +
		" mean body | most requests in flight | delivered |\n")
	w("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range r.Throughput {
		if !t.HTTP {
			continue
		}
		w("| %s | %s | %.0f | %s | %.2f | %d | %.0f / %d | %.1f KiB | %d | %d/%d |\n", relayName(t.Relay), t.Slow, t.Rate, runsK(t.Runs),
			t.CPUus, t.Requests, t.MeanBatch, t.MaxBatch, t.MeanBody/1024, t.MaxInFlight, t.Delivered, t.Sent)
	}
	r.otlpTable(w)
}

// otlpTable: OTLP/HTTP drains beside the syslog drain of the same run.
func (r *report) otlpTable(w func(string, ...any)) {
	syslog := r.find(relayRouter, 1, 1)
	if syslog == nil {
		return
	}
	rows := 0
	for _, t := range r.Throughput {
		if t.OTLP == "" {
			continue
		}
		if rows == 0 {
			w("\n### OTLP drains\n\n")
			w("1 connection in (block writes), one app with one `otlp+http://` drain into an OTLP/HTTP receiver in the harness\n")
			w("(binary protobuf; it gunzips and counts the LogRecords of each request by walking the protobuf, with\n")
			w("buffers and gzip readers reused, so its CPU is what any receiver must spend). Beside it, the same\n")
			w("router's syslog drain from this run. Measured under load when the load average above says so.\n\n")
			w("| drain | compression | msgs/s (median) | runs | CPU µs/msg | harness CPU µs/frame | of the syslog drain's rate | delivered |\n")
			w("|---|---|---|---|---|---|---|---|\n")
			w("| syslog:// | — | %.0f | %s | %.2f | %.2f | 100%% | %d/%d |\n", syslog.Rate, runsK(syslog.Runs), syslog.CPUus,
				syslog.HarnessUs, syslog.Delivered, syslog.Sent)
		}
		rows++
		w("| otlp+http:// | %s | %.0f | %s | %.2f | %.2f | %.0f%% | %d/%d |\n", t.OTLP, t.Rate, runsK(t.Runs), t.CPUus,
			t.HarnessUs, 100*t.Rate/syslog.Rate, t.Delivered, t.Sent)
	}
}

func (r *report) goals(w func(string, ...any)) {
	w("\n### Against the goals\n\n")
	rs1, rs4, ceil := r.find(relayRsyslog, 1, 1), r.find(relayRsyslog, 4, 1), r.find(relayLoopback, 1, 10)
	for _, v := range []string{relayRouter, relayRouter1P} {
		rt1, rt4, fan := r.find(v, 1, 1), r.find(v, 4, 1), r.find(v, 1, 10)
		if rs1 == nil || rs4 == nil || rt1 == nil || rt4 == nil || fan == nil {
			continue
		}
		w("- %s:\n", relayName(v))
		w("  - throughput ≥ 2× rsyslog: %.2f× with 1 connection, %.2f× with 4;\n", rt1.Rate/rs1.Rate, rt4.Rate/rs4.Rate)
		w("  - CPU ≤ 1 µs/msg: %.2f (1 conn), %.2f (4 conns), against rsyslog's %.2f and %.2f;\n", rt1.CPUus, rt4.CPUus, rs1.CPUus, rs4.CPUus)
		w("  - fan-out to 10 drains ≥ 2× rsyslog's single-drain rate: %.0f input msgs/s (%.0f deliveries/s) = %.2f× rsyslog",
			fan.Rate, fan.Rate*10, fan.Rate/rs1.Rate)
		if ceil != nil {
			w(" (the harness alone takes %.2f×)", ceil.Rate/rs1.Rate)
		}
		w(";\n")
		lo1 := r.find(relayLoopback, 1, 1)
		if lo1 != nil {
			w("  - one connection ≥ 3× rsyslog and ≥ 35%% of raw loopback: block writes %.2f× and %.0f%%", rt1.Rate/rs1.Rate, 100*rt1.Rate/lo1.Rate)
			for _, per := range []int{20, 1} {
				rt, rs, lo := r.findW(v, 1, 1, per), r.findW(relayRsyslog, 1, 1, per), r.findW(relayLoopback, 1, 1, per)
				if rt != nil && rs != nil && lo != nil {
					w("; %d frames per write %.2f× and %.0f%% (of loopback with the same writes)", per, rt.Rate/rs.Rate, 100*rt.Rate/lo.Rate)
				}
			}
			w(";\n")
		}
		rsAt := map[int]latency{}
		for _, l := range r.Latency {
			if l.Relay == relayRsyslog {
				rsAt[l.Rate] = l
			}
		}
		for _, l := range r.Latency {
			if l.Relay != v {
				continue
			}
			goal := time.Millisecond
			if l.Rate > 50_000 {
				goal = 2 * time.Millisecond
			}
			if l.Rate >= 10_000 {
				w("  - p99 ≤ %s at %d msgs/s: %s (runs: %s);\n", goal, l.Rate, l.P99.Round(time.Microsecond), durations(l.P99s))
			}
			if rl, ok := rsAt[l.Rate]; ok && l.Rate == 10_000 && rl.CPUus > 0 {
				w("  - CPU at a steady %d msgs/s ≤ 0.5× rsyslog: %.2f against %.2f CPU-µs/msg = %.2f×;\n", l.Rate, l.CPUus, rl.CPUus, l.CPUus/rl.CPUus)
			}
		}
	}
	for _, t := range r.Throughput {
		if t.HTTP && t.Slow == 0 {
			w("- HTTP drain ≥ 560k msgs/s into a local receiver (%s): %.0f msgs/s.\n", relayName(t.Relay), t.Rate)
		}
	}
	if syslog := r.find(relayRouter, 1, 1); syslog != nil {
		for _, t := range r.Throughput {
			if t.OTLP != "" && t.Relay == relayRouter {
				w("- OTLP/HTTP drain (%s) ≥ 50%% of the syslog drain's rate: %.0f%% (%.0f against %.0f msgs/s).\n",
					t.OTLP, 100*t.Rate/syslog.Rate, t.Rate, syslog.Rate)
			}
		}
	}
	if h := r.History; h != nil {
		w("- ≤ 235 bytes of RSS per buffered 204-byte line: %.0f.\n", float64(h.RSSAfter-h.RSSBefore)/float64(h.Messages))
	}
}

func runsK(rs []float64) string {
	out := make([]string, 0, len(rs))
	for _, x := range rs {
		out = append(out, fmt.Sprintf("%.0fk", x/1000))
	}
	return strings.Join(out, ", ")
}

func durations(ds []time.Duration) string {
	s := make([]string, 0, len(ds))
	for _, d := range ds {
		s = append(s, d.Round(10*time.Microsecond).String())
	}
	return strings.Join(s, ", ")
}

// writeSection replaces the section that starts with heading (up to the next "## "
// heading) in the markdown file at path, creating the file if needed.
func writeSection(path, heading, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	doc := string(old)
	if doc == "" {
		doc = "# Benchmarks\n"
	}
	lines := strings.SplitAfter(doc, "\n")
	var out strings.Builder
	replaced, skipping := false, false
	for _, l := range lines {
		trimmed := strings.TrimRight(l, "\n")
		if skipping {
			if strings.HasPrefix(trimmed, "## ") {
				skipping = false
			} else {
				continue
			}
		}
		if trimmed == heading && !replaced {
			out.WriteString(section)
			out.WriteString("\n")
			replaced, skipping = true, true
			continue
		}
		out.WriteString(l)
	}
	if !replaced {
		s := out.String()
		if !strings.HasSuffix(s, "\n\n") {
			if strings.HasSuffix(s, "\n") {
				out.WriteString("\n")
			} else {
				out.WriteString("\n\n")
			}
		}
		out.WriteString(section)
	}
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
