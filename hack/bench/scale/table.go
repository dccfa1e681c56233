package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/dispatch"
)

// tableSize is one row of the routing-table measurement.
type tableSize struct{ drains, apps int }

// tableRow is what one size measured.
type tableRow struct {
	size            tableSize
	cacheBytes      uint64 // heap held by the generated objects (what the manager's cache holds)
	render          timing // the run with the median wall time
	renderAlloc     uint64 // bytes allocated by one render
	split           timing
	bytes, shards   int
	oldShards       int // shards the 16-shard layout of the same bytes needs
	changedShards   int // shards a one-drain change rewrites
	changedBytes    int
	changeOne       timing // manager: a one-drain change with a warm Renderer (median CPU of applyReps)
	join            timing // router: decode and join every shard
	joinOne         timing // router: decode the changed shards, assemble with the others
	apply           timing // router: first table (every app and drain new)
	applyOne        timing // router: a one-drain change (median CPU of applyReps)
	routerHeap      uint64 // heap the applied table holds in the router
	routerGoroutine int
}

// timing is a step's wall time and the process's CPU time over it (user+system, GC
// included): on a machine others are loading, the CPU figure is the one to compare.
type timing struct{ wall, cpu time.Duration }

func (t timing) String() string {
	return fmt.Sprintf("%.0f / %.0f ms", float64(t.wall)/float64(time.Millisecond), float64(t.cpu)/float64(time.Millisecond))
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs f and returns its timing.
func measure(f func() error) (timing, error) {
	c, w := cpuNow(), time.Now()
	err := f()
	return timing{wall: time.Since(w), cpu: cpuNow() - c}, err
}

func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// measureTable renders, splits and applies a table of the given size, three renders
// and one router apply per size. Everything stays in this process: the manager's
// render and store are pure functions of the cache, the router's apply of the table.
func measureTable(s tableSize, maxShardBytes int) (tableRow, error) {
	row := tableRow{size: s}
	base := heap()
	in := genInput(s.apps, s.drains)
	row.cacheBytes = heap() - base

	var res routes.Result
	runs := make([]timing, 0, 3)
	for range 3 {
		a0 := allocated()
		tm, _ := measure(func() error { res = routes.Render(in); return nil })
		runs = append(runs, tm)
		row.renderAlloc = allocated() - a0
	}
	slices.SortFunc(runs, func(a, b timing) int { return int(a.wall - b.wall) })
	row.render = runs[1]
	if n := len(res.Problems); n > 0 {
		return row, fmt.Errorf("render left %d objects out, first: %+v", n, res.Problems[0])
	}

	var shards [][]byte
	var err error
	if row.split, err = measure(func() (err error) { shards, err = routing.Split(res.Table, maxShardBytes); return err }); err != nil {
		return row, err
	}
	row.shards = len(shards)
	for _, b := range shards {
		row.bytes += len(b)
	}
	row.oldShards = (row.bytes + maxShardBytes - 1) / maxShardBytes

	// One more drain on an existing app: what a single kubectl apply changes.
	in.Drains = append(in.Drains, genDrain(s.drains, s.apps))
	in.Secrets = append(in.Secrets, genDrainSecret(s.drains, s.apps))
	next := routes.Render(in).Table
	nextShards, err := routing.Split(next, maxShardBytes, len(shards))
	if err != nil {
		return row, err
	}
	var changed []int
	for i, b := range nextShards {
		if i >= len(shards) || string(b) != string(shards[i]) {
			row.changedShards++
			row.changedBytes += len(b)
			changed = append(changed, i)
		}
	}

	if row.changeOne, err = renderChanges(in, maxShardBytes, len(shards), applyReps); err != nil {
		return row, err
	}

	var joined *routing.Table
	if row.join, err = measure(func() (err error) { joined, err = routing.Join(shards); return err }); err != nil {
		return row, err
	}
	// What a router holding the decoded shards does for the change (tablesource.Secret):
	// its assembler has seen the shards it holds, and the tables it applies share
	// the shards that did not change.
	parts := make([]*routing.Table, len(nextShards))
	for i, b := range shards {
		if i < len(parts) {
			parts[i] = &routing.Table{}
			if err := json.Unmarshal(b, parts[i]); err != nil {
				return row, err
			}
		}
	}
	var as routing.Assembler
	held, err := as.Assemble(parts)
	if err != nil {
		return row, err
	}
	if row.joinOne, err = measure(func() (err error) {
		for _, i := range changed {
			parts[i] = &routing.Table{}
			if err := json.Unmarshal(nextShards[i], parts[i]); err != nil {
				return err
			}
		}
		next, err = as.Assemble(parts)
		return err
	}); err != nil {
		return row, err
	}

	g0 := runtime.NumGoroutine()
	h0 := heap()
	d := dispatch.New(dispatch.Options{Logger: slog.New(slog.DiscardHandler), Router: "bench"})
	if row.apply, err = measure(func() error { return d.Apply(joined) }); err != nil {
		return row, err
	}
	row.routerHeap = heap() - h0
	row.routerGoroutine = runtime.NumGoroutine() - g0
	if err := d.Apply(held); err != nil {
		return row, err
	}
	if row.applyOne, err = applyChanges(d, next, held, applyReps); err != nil {
		return row, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d.Shutdown(ctx)
	cancel()
	return row, nil
}

// renderChanges is what the manager does for a one-drain change once it runs: its
// Renderer has rendered the table before, and renders and splits it again with the
// last drain of in removed, then added back, in turn. It returns the run of median
// CPU. The render reads every object as the reconciler does; what it remembers
// (routes.Renderer, routing.Encoder) is what makes the change cheap.
func renderChanges(in routes.Input, maxShardBytes, prevShards, n int) (timing, error) {
	r := &routes.Renderer{Encoder: &routing.Encoder{}}
	with := in
	without := in
	without.Drains = in.Drains[:len(in.Drains)-1]
	without.Secrets = in.Secrets[:len(in.Secrets)-1]
	if _, err := r.Encoder.Split(r.Render(with).Table, maxShardBytes, prevShards); err != nil {
		return timing{}, err
	}
	runs := make([]timing, 0, n)
	for i := range n {
		cur := without
		if i%2 == 1 {
			cur = with
		}
		tm, err := measure(func() error {
			_, err := r.Encoder.Split(r.Render(cur).Table, maxShardBytes, prevShards)
			return err
		})
		if err != nil {
			return timing{}, err
		}
		runs = append(runs, tm)
	}
	slices.SortFunc(runs, func(a, b timing) int { return int(a.cpu - b.cpu) })
	return runs[n/2], nil
}

// applyReps is how many one-drain changes a row applies: one sample of a step that
// takes tens of milliseconds is mostly the noise of a loaded machine.
const applyReps = 9

// applyChanges applies with and without the added drain in turn (each apply a
// one-drain change: one added, then one removed) and returns the run of median CPU.
func applyChanges(d *dispatch.Dispatcher, with, without *routing.Table, n int) (timing, error) {
	runs := make([]timing, 0, n)
	for i := range n {
		t := with
		if i%2 == 1 {
			t = without
		}
		tm, err := measure(func() error { return d.Apply(t) })
		if err != nil {
			return timing{}, err
		}
		runs = append(runs, tm)
	}
	slices.SortFunc(runs, func(a, b timing) int { return int(a.cpu - b.cpu) })
	return runs[n/2], nil
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func tableSection(rows []tableRow, maxShardBytes, maxShards int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| drains | apps | manager: objects held | render (median of 3) | allocated per render | table bytes | "+
		"shards (of %d KiB) | split | a one-drain change rewrites | manager: a one-drain change, render and split (median of %d) | "+
		"router: join all shards | apply first table | "+
		"read a one-drain change | apply it (median of %d) | router heap held | drain goroutines |\n", maxShardBytes>>10, applyReps, applyReps)
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		wall := ""
		if r.shards > maxShards {
			wall = fmt.Sprintf(" (over %d: not written)", maxShards)
		}
		fmt.Fprintf(&b, "| %d | %d | %s | %s | %s | %.1f MiB | %d%s | %s | %d shard(s), %.1f MiB | %s | %s | %s | %s | %s | %s | %d |\n",
			r.size.drains, r.size.apps, mib(r.cacheBytes), r.render, mib(r.renderAlloc), float64(r.bytes)/(1<<20),
			r.shards, wall, r.split, r.changedShards, float64(r.changedBytes)/(1<<20), r.changeOne, r.join, r.apply, r.joinOne, r.applyOne,
			mib(r.routerHeap), r.routerGoroutine)
	}
	return b.String()
}
