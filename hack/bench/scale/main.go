// Command scale-bench measures how kubeplex grows (make bench-scale): the routing table
// at 10,000 / 30,000 / 50,000 drains (render, bytes, shards, router apply), written
// into docs/scaling.md.
//
//	go run ./hack/bench/scale -doc docs/scaling.md
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/hack/bench/benchdoc"
)

func main() {
	doc := flag.String("doc", "", "write results into this markdown file (its measured sections)")
	only := flag.String("only", "table,replicas,collectors,apply", "comma-separated sections: table, replicas, owners, collectors, apply")
	messages := flag.Int("messages", 600000, "messages per throughput run (-only replicas)")
	routerBin := flag.String("router", "", "router binary for -only apply (default: build ./cmd/router)")
	applySize := flag.String("apply-size", "10000:1000",
		"drains:apps of the end-to-end apply run (50000:25000 took over 40 minutes of object creation on a loaded 2-CPU machine)")
	reps := flag.Int("reps", 5, "probes per condition in the apply run")
	sizes := flag.String("sizes", "10000:5000,30000:15000,50000:25000", "drains:apps of the table rows")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale-bench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*doc, *only, *sizes, *routerBin, *applySize, *reps, *messages); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "scale-bench:", err)
		os.Exit(1)
	}
}

func run(doc, only, sizes, routerBin, applySize string, reps, messages int) error {
	build := func() (string, error) {
		if routerBin != "" {
			return routerBin, nil
		}
		dir, err := os.MkdirTemp("", "kubeplex-scale-bin-")
		if err != nil {
			return "", err
		}
		routerBin = filepath.Join(dir, "router")
		cmd := exec.Command("go", "build", "-trimpath", "-o", routerBin, "./cmd/router")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build router: %w\n%s", err, out)
		}
		return routerBin, nil
	}
	for _, sec := range strings.Split(only, ",") {
		switch sec {
		case "table":
			var rows []tableRow
			for _, s := range strings.Split(sizes, ",") {
				var ts tableSize
				if _, err := fmt.Sscanf(s, "%d:%d", &ts.drains, &ts.apps); err != nil {
					return fmt.Errorf("-sizes %q: %w", s, err)
				}
				start := time.Now()
				r, err := measureTable(ts, routes.DefaultMaxShardBytes)
				if err != nil {
					return fmt.Errorf("table %d drains: %w", ts.drains, err)
				}
				fmt.Fprintf(os.Stderr, "table %d drains / %d apps: %v\n", ts.drains, ts.apps, time.Since(start).Round(time.Millisecond))
				rows = append(rows, r)
			}
			body := fmt.Sprintf("Measured by `make bench-scale` on %s, %d CPUs, %s, %s; measured under load (%s).\n\n",
				time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), loadAvg(), loadNote) +
				tableIntro + tableSection(rows, routes.DefaultMaxShardBytes, routes.DefaultMaxShards)
			if err := write(doc, "## Routing table at 10,000–50,000 drains", body); err != nil {
				return err
			}
		case "replicas":
			bin, err := build()
			if err != nil {
				return err
			}
			body, err := replicasSection(bin, messages, 3)
			if err != nil {
				return err
			}
			if err := write(doc, "## Router replicas", body); err != nil {
				return err
			}
		case "owners":
			bin, err := build()
			if err != nil {
				return err
			}
			body, err := ownersSection(bin, messages, 3)
			if err != nil {
				return err
			}
			if err := write(doc, "## Drain ownership, measured", body); err != nil {
				return err
			}
		case "collectors":
			bin, err := build()
			if err != nil {
				return err
			}
			r, err := measureCollectors(bin, 200, 3, 10*time.Second)
			if err != nil {
				return err
			}
			without, err := measureCollectors(bin, 200, 3, -1)
			if err != nil {
				return err
			}
			if err := write(doc, "## Collectors over replicas", collectorsSection(r, without)); err != nil {
				return err
			}
		case "apply":
			var drains, apps int
			if _, err := fmt.Sscanf(applySize, "%d:%d", &drains, &apps); err != nil {
				return fmt.Errorf("-apply-size %q: %w", applySize, err)
			}
			bin, err := build()
			if err != nil {
				return err
			}
			r, err := measureApply(context.Background(), bin, drains, apps, reps)
			if err != nil {
				return fmt.Errorf("apply run: %w", err)
			}
			if err := write(doc, "## From kubectl apply to the first delivered message", applySection(r)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown section %q", sec)
		}
	}
	return nil
}

const tableIntro = "The generator (`hack/bench/scale`) builds what the manager's cache holds for N LogDrains over M LogApps " +
	"(per app a token and a collector Secret, per drain its drain Secret with token, signing key and accepted destination; " +
	"drains round-robin over the apps, half https with Basic auth, half syslog+tls) and runs the manager's `routes.Render` and " +
	"`routing.Split` and the router's `routing.Join` and `dispatch.Apply` on it in one process: no API server in these rows. " +
	"\"Objects held\" is the Go heap the generated objects take (the manager's informer cache holds them too, plus metadata). " +
	"\"Router heap held\" is what the applied table keeps (apps, tokens, empty histories and drain queues, one goroutine per drain). " +
	"Times are wall / CPU: the process's user+system time over the step, GC included; " +
	"with the machine loaded the CPU figure is the one to compare. " +
	"\"A one-drain change\" adds a drain to an existing app: the shards whose bytes differ (shard 0 and the app's shard), and what a router " +
	"holding the decoded shards does for it (`tablesource.Secret`: decode the changed shards, `routing.Assemble`). " +
	"The layout before this change (shards in ID order, each carrying the version) rewrote and re-read every shard on every change, " +
	"and stopped at 16 shards: 50,000 drains needed 22 of them.\n\n"

var loadNote = "other engineers building on the same 2 CPUs"

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average at start " + strings.Join(f[:3], " ")
}

func write(doc, heading, body string) error {
	if doc == "" {
		fmt.Println(heading + "\n\n" + body)
		return nil
	}
	return benchdoc.WriteSection(doc, heading, body)
}

// mdRow writes one markdown table row.
func mdRow(b *strings.Builder, cells ...any) {
	for _, c := range cells {
		fmt.Fprintf(b, "| %v ", c)
	}
	b.WriteString("|\n")
}

// mdHead writes a markdown table's header and separator.
func mdHead(b *strings.Builder, cols ...string) {
	b.WriteString("| " + strings.Join(cols, " | ") + " |\n|" + strings.Repeat("---|", len(cols)) + "\n")
}

const (
	routesName = "kubeplex-routes"
	srcApp     = "app"
)
