package wrap

import (
	"slices"
	"testing"
)

func TestParseOOMKill(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint64
		ok   bool
	}{
		{name: "cgroup v2 memory.events", in: "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n", want: 2, ok: true},
		{name: "cgroup v1 memory.oom_control", in: "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n", want: 7, ok: true},
		{name: "old kernel without the counter", in: "oom_kill_disable 0\nunder_oom 0\n"},
		{name: "garbage", in: "oom_kill x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseOOMKill([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %d %v, want %d %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCgroupCounterFiles(t *testing.T) {
	got := cgroupCounterFiles([]byte("12:cpu,cpuacct:/a\n4:memory:/kubepods/pod1/c1\n0::/kubepods/pod1/c1\n"))
	for _, want := range []string{
		"/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.oom_control",
		"/sys/fs/cgroup/kubepods/pod1/c1/memory.events",
		"/sys/fs/cgroup/memory.events",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("%q missing from %q", want, got)
		}
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sh", "-c", "echo hi; exit 2"}, `sh -c 'echo hi; exit 2'`},
		{[]string{"server", "--port=8080"}, `server --port=8080`},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"echo", ""}, `echo ''`},
	}
	for _, tt := range tests {
		if got := Command(tt.args); got != tt.want {
			t.Errorf("Command(%q) = %s, want %s", tt.args, got, tt.want)
		}
	}
}
