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
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
	// match, when set, runs only the throughput scenarios whose description
	// (scenario.String) matches it.
	match *regexp.Regexp
	// latencyRelays limits the latency runs to these relays (comma-separated).
	latencyRelays string
	routerEnv     string
	keep          bool
	// baseline is another router binary run beside the router in the latency runs.
	baseline string
	stalls   bool
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
	flag.StringVar(&o.profile, "router-cpuprofile", "", "save router CPU profiles (and execution traces of latency runs) to this prefix")
	flag.StringVar(&o.only, "only", "", "run only the throughput runs of this relay, or \"latency\" for the latency runs (debugging)")
	flag.StringVar(&o.latencyRelays, "latency-relays", "", "comma-separated relays for the latency runs (default all; debugging)")
	flag.StringVar(&o.routerEnv, "router-env", "", "comma-separated NAME=VALUE added to the router's environment (debugging)")
	flag.StringVar(&o.baseline, "baseline", "", "another router binary run beside -router (1-connection, HTTP and latency runs), for before/after in one run")
	flag.BoolVar(&o.stalls, "stalls", false, "log every stall (messages over 1 ms) of the latency runs (debugging)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory with the relays' logs (debugging)")
	match := flag.String("match", "",
		"run only the throughput scenarios whose description (as logged, e.g. \"router conns=4\") matches this regexp (debugging)")
	rates := flag.String("rates", "1000,10000,50000,100000", "comma-separated rates of the latency runs, msgs/s")
	copyIn := flag.String("copy-relay", "", "internal: run as the copy relay listening on this address")
	copyOut := flag.String("copy-to", "", "internal: the copy relay's sink address")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if *copyIn != "" {
		if err := copyRelay(*copyIn, *copyOut); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *match != "" {
		re, err := regexp.Compile(*match)
		if err != nil {
			log.Fatalf("parse -match: %v", err)
		}
		o.match = re
	}
	o.rates = nil
	for _, f := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			log.Fatalf("parse -rates: %v", err)
		}
		o.rates = append(o.rates, n)
	}
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
	if o.keep {
		log.Printf("work directory: %s", dir)
	} else {
		defer func() {
			if err := os.RemoveAll(dir); err != nil {
				log.Printf("remove work directory: %v", err)
			}
		}()
	}
	b := &bench{o: o, dir: dir}
	rep, err := b.all(ctx)
	if err != nil {
		return err
	}
	rep.Took = time.Since(start)
	rep.LoadEnd = loadAvg()
	md := rep.markdown()
	fmt.Print(md)
	if o.doc != "" {
		if svg := rep.chartSVG(); svg != "" {
			if err := writeChart(filepath.Join(filepath.Dir(o.doc), chartFile), svg); err != nil {
				return err
			}
		}
		if err := writeSection(o.doc, "## Router", md); err != nil {
			return err
		}
		log.Printf("wrote %s", o.doc)
	}
	return nil
}
