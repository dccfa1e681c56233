package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/dispatch"
)

// genTable is a table of the shape hack/bench/scale renders: per app an ingest and a
// collector token, drains round-robin over the apps, half https with Basic auth and
// a signing key, half syslog+tls. extra drains are added after the first n.
func genTable(drains, apps int) *routing.Table {
	t := &routing.Table{Platform: []routing.Token{{SHA256: routing.HashToken("p.0"), Source: routing.PlatformSource}}}
	t.Apps = make([]routing.App, apps)
	for a := range apps {
		t.Apps[a] = routing.App{ID: fmt.Sprintf("team-%05d/app-%d", a/5, a%5), History: 1500, Tokens: []routing.Token{
			{SHA256: routing.HashToken(fmt.Sprintf("t.%08x", a)), Source: "app"},
			{SHA256: routing.HashToken(fmt.Sprintf("c.%08x", a)), Source: "app", Collector: true},
		}}
	}
	for d := range drains {
		a := &t.Apps[d%apps]
		a.Drains = append(a.Drains, genDrain(d, a.ID))
	}
	t.Seal()
	return t
}

func genDrain(d int, app string) routing.Drain {
	ns := app[:len("team-00000")]
	dr := routing.Drain{ID: fmt.Sprintf("%s/drain-%06d", ns, d), Token: fmt.Sprintf("d.%08x-0000-4000-8000-000000000000", d),
		HMACKey: fmt.Sprintf("%064x", d*104729+1)}
	if d%2 == 0 {
		dr.URL = fmt.Sprintf("https://logs-%d.collector.example-observability.com/v1/ingest/%s", d%97, ns)
		dr.Username, dr.Password = "kubeplex", fmt.Sprintf("s3cr3t-%016x", d*7919)
	} else {
		dr.URL = fmt.Sprintf("syslog+tls://logs%d.papertrailapp.example.com:%d", d%13, 20000+d%40000)
	}
	return dr
}

// decodeShards decodes every shard as tablesource.Secret does.
func decodeShards(tb testing.TB, shards [][]byte) []*routing.Table {
	tb.Helper()
	parts := make([]*routing.Table, len(shards))
	for i, b := range shards {
		parts[i] = &routing.Table{}
		if err := json.Unmarshal(b, parts[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return parts
}

// BenchmarkOneDrainChange is a router's side of a one-drain kubectl apply on a big
// table: decode the shards that changed (the app's and shard 0), assemble them with
// the ones held decoded, apply. Each iteration adds the drain or removes it again.
// KUBEPLEX_BENCH_DRAINS sets the size (apps are half the drains; default 10,000).
func BenchmarkOneDrainChange(b *testing.B) {
	drains := 10000
	if s := os.Getenv("KUBEPLEX_BENCH_DRAINS"); s != "" {
		var err error
		if drains, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	apps := drains / 2
	base := genTable(drains, apps)
	shards, err := routing.Split(base, 900<<10)
	if err != nil {
		b.Fatal(err)
	}
	more := genTable(drains, apps)
	more.Apps[7].Drains = append(more.Apps[7].Drains, genDrain(drains, more.Apps[7].ID))
	more.Seal()
	moreShards, err := routing.Split(more, 900<<10, len(shards))
	if err != nil {
		b.Fatal(err)
	}
	var changed []int
	for i := range shards {
		if string(shards[i]) != string(moreShards[i]) {
			changed = append(changed, i)
		}
	}
	parts := decodeShards(b, shards)
	d := dispatch.New(dispatch.Options{Logger: slog.New(slog.DiscardHandler), Router: "bench"})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	var as routing.Assembler // as tablesource.Secret keeps one
	whole, err := as.Assemble(parts)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Apply(whole); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(changed)), "shards/op")
	runtime.GC()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		from := moreShards
		if i%2 == 1 {
			from = shards
		}
		for _, s := range changed {
			parts[s] = &routing.Table{}
			if err := json.Unmarshal(from[s], parts[s]); err != nil {
				b.Fatal(err)
			}
		}
		whole, err := as.Assemble(parts)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Apply(whole); err != nil {
			b.Fatal(err)
		}
	}
	// CPU, GC included: what every replica pays, whatever else the machine runs.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
