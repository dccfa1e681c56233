package wrap

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseOOMKill: cgroup files are read as they are; a count is only ever what an
// "oom_kill N" line says.
func FuzzParseOOMKill(f *testing.F) {
	f.Add([]byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"))
	f.Add([]byte("oom_kill_disable 0\nunder_oom 0\noom_kill 18446744073709551615"))
	f.Add([]byte("oom_kill 18446744073709551616\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := ParseOOMKill(b)
		if !ok {
			return
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if v, cut := strings.CutPrefix(line, "oom_kill "); cut {
				m, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				found = err == nil && m == n
				break
			}
		}
		if !found {
			t.Fatalf("%q: %d taken, not the first oom_kill line's count", b, n)
		}
	})
}
