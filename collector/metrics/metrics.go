// Package metrics reads a container's resource use from its cgroup (v2 or v1) and
// formats it as Heroku's log-runtime-metrics lines:
//
//	source=web.1 dyno=web-7d9f8c6b5-x2k4q sample#memory_total=21.00MB sample#memory_rss=18.50MB
//	sample#memory_cache=2.50MB sample#memory_swap=0.00MB sample#load_avg_1m=0.12
//
// (one line).
//
// The collector's wrapper runs inside the worker's container, so its cgroup is the
// container's (a container's cgroup namespace shows it as the root of
// /sys/fs/cgroup). The sidecar cannot read the workers' cgroups: its own namespace
// shows only its own.
package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Sample is one reading.
type Sample struct {
	MemoryTotal, MemoryRSS, MemoryCache, MemorySwap uint64 // bytes
	// CPU is the cgroup's total CPU time so far.
	CPU time.Duration
}

// Reader reads samples below Root (/sys/fs/cgroup; tests give a fixture tree).
type Reader struct {
	Root string
	// ProcCgroup is the content of /proc/self/cgroup (nil: read it).
	ProcCgroup []byte
}

// Read takes one sample: cgroup v2 when Root has cgroup.controllers, else v1.
func (r Reader) Read() (Sample, error) {
	root := r.Root
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	pc := r.ProcCgroup
	if pc == nil {
		pc, _ = os.ReadFile("/proc/self/cgroup") // absent outside Linux: the root is used
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return readV2(dirFor(root, pc, "0", ""))
	}
	return readV1(dirFor(filepath.Join(root, "memory"), pc, "", "memory"), cpuDir(root, pc))
}

// dirFor is the cgroup's directory: the path /proc/self/cgroup names when it exists
// below root, else root itself (inside a cgroup namespace the container is the root).
func dirFor(root string, procCgroup []byte, id, controller string) string {
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if (id != "" && parts[0] == id && parts[1] == "") || (controller != "" && hasController(parts[1], controller)) {
			p := filepath.Join(root, filepath.Clean("/"+parts[2]))
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				return p
			}
		}
	}
	return root
}

func cpuDir(root string, procCgroup []byte) string {
	for _, name := range []string{"cpuacct", "cpu,cpuacct", "cpuacct,cpu"} {
		base := filepath.Join(root, name)
		if _, err := os.Stat(base); err == nil {
			return dirFor(base, procCgroup, "", "cpuacct")
		}
	}
	return filepath.Join(root, "cpuacct")
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

func readV2(dir string) (Sample, error) {
	var s Sample
	var err error
	if s.MemoryTotal, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return s, err
	}
	stat, err := readKV(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return s, err
	}
	s.MemoryRSS, s.MemoryCache = stat["anon"], stat["file"]
	// No swap controller (or swap off): memory.swap.current is absent; swap is 0.
	s.MemorySwap, _ = readUint(filepath.Join(dir, "memory.swap.current"))
	cpu, err := readKV(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return s, err
	}
	s.CPU = time.Duration(cpu["usage_usec"]) * time.Microsecond
	return s, nil
}

func readV1(memDir, cpuDir string) (Sample, error) {
	var s Sample
	var err error
	if s.MemoryTotal, err = readUint(filepath.Join(memDir, "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	stat, err := readKV(filepath.Join(memDir, "memory.stat"))
	if err != nil {
		return s, err
	}
	s.MemoryRSS, s.MemoryCache, s.MemorySwap = stat["rss"], stat["cache"], stat["swap"]
	ns, err := readUint(filepath.Join(cpuDir, "cpuacct.usage"))
	if err != nil {
		return s, err
	}
	s.CPU = time.Duration(ns)
	return s, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read cgroup: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0, errors.New("read cgroup: " + path + " has no number")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read cgroup %s: %w", path, err)
	}
	return n, nil
}

func readKV(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cgroup: %w", err)
	}
	out := map[string]uint64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// Load is Heroku's load_avg_1m for one container: the number of CPUs kept busy,
// averaged exponentially over a minute, from the cgroup's CPU time (the kernel's
// /proc/loadavg is the node's, not the container's).
type Load struct {
	avg      float64
	last     time.Duration
	lastTime time.Time
	started  bool
}

// Add folds in a sample taken at now and returns the average.
func (l *Load) Add(now time.Time, cpu time.Duration) float64 {
	if !l.started || now.Sub(l.lastTime) <= 0 || cpu < l.last {
		l.started, l.last, l.lastTime = true, cpu, now
		return l.avg
	}
	dt := now.Sub(l.lastTime)
	busy := float64(cpu-l.last) / float64(dt)
	w := math.Exp(-dt.Seconds() / 60)
	l.avg = l.avg*w + busy*(1-w)
	l.last, l.lastTime = cpu, now
	return l.avg
}

// Line formats a sample as log-runtime-metrics does.
func Line(process, dyno string, s Sample, load float64) string {
	mb := func(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 2, 64) + "MB" }
	return fmt.Sprintf("source=%s dyno=%s sample#memory_total=%s sample#memory_rss=%s sample#memory_cache=%s "+
		"sample#memory_swap=%s sample#load_avg_1m=%.2f",
		process, dyno, mb(s.MemoryTotal), mb(s.MemoryRSS), mb(s.MemoryCache), mb(s.MemorySwap), load)
}
