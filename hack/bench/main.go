// Command kubeplex-bench measures the router against rsyslog as a TCP syslog relay on
// this machine: the same octet-counted RFC 5424 frames in over TCP and out over TCP to
// a sink, plus raw loopback as the ceiling. It writes a table into the "## Router"
// section of docs/benchmarks.md. Run it with `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	router   string
	rsyslogd string
	messages int
	reps     int
	doc      string
	rates    []int
	latDur   time.Duration
	apps     int
	// profile, when set, saves a CPU profile of the router during its throughput runs.
	profile string
	only    string
}

func main() {
	var o options
	flag.StringVar(&o.router, "router", "bin/router", "router binary")
	flag.StringVar(&o.rsyslogd, "rsyslogd", "/usr/sbin/rsyslogd", "rsyslogd binary")
	flag.IntVar(&o.messages, "messages", 1_000_000, "frames per throughput run")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each throughput run (median reported)")
	flag.StringVar(&o.doc, "doc", "docs/benchmarks.md", "markdown file whose ## Router section is rewritten (empty: print only)")
	flag.DurationVar(&o.latDur, "latency-duration", 3*time.Second, "duration of each fixed-rate latency run")
	flag.IntVar(&o.apps, "history-apps", 1000, "apps filled with 1500 lines each for the history memory run")
	flag.StringVar(&o.profile, "router-cpuprofile", "", "save router CPU profiles during throughput runs to this prefix")
	flag.StringVar(&o.only, "only", "", "run only the throughput runs of this relay, or \"latency\" for the latency runs (debugging)")
	flag.Parse()
	o.rates = []int{10_000, 50_000, 100_000}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "kubeplex-bench")
	if err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	b := &bench{o: o, dir: dir}
	rep, err := b.all(ctx)
	if err != nil {
		return err
	}
	rep.Took = time.Since(start)
	md := rep.markdown()
	fmt.Print(md)
	if o.doc != "" {
		if err := writeSection(o.doc, "## Router", md); err != nil {
			return err
		}
		log.Printf("wrote %s", o.doc)
	}
	return nil
}
