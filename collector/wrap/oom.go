package wrap

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OOMKills returns the OOM-kill count of the collector's own memory cgroup (the
// container's), and whether one could be read. A worker that died of SIGKILL while
// the count rose was killed by the kernel's OOM killer: the kernel itself says so in
// no other place a container can read.
func OOMKills() (uint64, bool) {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	for _, p := range cgroupCounterFiles(cg) {
		if b, err := os.ReadFile(p); err == nil {
			if n, ok := ParseOOMKill(b); ok {
				return n, true
			}
		}
	}
	return 0, false
}

// cgroupCounterFiles lists the files that may hold the oom_kill counter, most
// specific first: cgroup v2 memory.events, cgroup v1 memory.oom_control, each at the
// path /proc/self/cgroup names and at the root (a container's cgroup namespace shows
// its own cgroup as the root).
func cgroupCounterFiles(procCgroup []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		path := filepath.Clean("/" + parts[2])
		switch {
		case parts[0] == "0" && parts[1] == "":
			out = append(out,
				filepath.Join("/sys/fs/cgroup", path, "memory.events"),
				filepath.Join("/sys/fs/cgroup/unified", path, "memory.events"))
		case hasController(parts[1], "memory"):
			out = append(out, filepath.Join("/sys/fs/cgroup/memory", path, "memory.oom_control"))
		}
	}
	return append(out, "/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// ParseOOMKill reads the "oom_kill N" line of memory.events or memory.oom_control.
func ParseOOMKill(b []byte) (uint64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
