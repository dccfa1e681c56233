package metrics

import (
	"math"
	"testing"
	"time"
)

func TestReadFixtures(t *testing.T) {
	for _, c := range []struct {
		name, root, procCgroup string
		want                   Sample
		line                   string
	}{
		{"v2 host view", "testdata/v2", "0::/kubepods/pod1/ctr\n",
			Sample{MemoryTotal: 22020096, MemoryRSS: 19398656, MemoryCache: 2621440, CPU: 1500 * time.Millisecond},
			"source=web.1 dyno=web-x sample#memory_total=21.00MB sample#memory_rss=18.50MB sample#memory_cache=2.50MB sample#memory_swap=0.00MB sample#load_avg_1m=0.00"},
		{"v2 cgroup namespace", "testdata/v2ns", "0::/\n",
			Sample{MemoryTotal: 1048576, MemoryRSS: 524288, MemoryCache: 524288, CPU: 250 * time.Millisecond},
			"source=web.1 dyno=web-x sample#memory_total=1.00MB sample#memory_rss=0.50MB sample#memory_cache=0.50MB sample#memory_swap=0.00MB sample#load_avg_1m=0.00"},
		{"v1", "testdata/v1", "12:memory:/kubepods/pod1/ctr\n4:cpu,cpuacct:/kubepods/pod1/ctr\n",
			Sample{MemoryTotal: 31457280, MemoryRSS: 26214400, MemoryCache: 4194304, MemorySwap: 1048576, CPU: 3 * time.Second},
			"source=web.1 dyno=web-x sample#memory_total=30.00MB sample#memory_rss=25.00MB sample#memory_cache=4.00MB sample#memory_swap=1.00MB sample#load_avg_1m=0.00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Reader{Root: c.root, ProcCgroup: []byte(c.procCgroup)}.Read()
			if err != nil {
				t.Fatal(err)
			}
			if s != c.want {
				t.Errorf("sample %+v, want %+v", s, c.want)
			}
			if got := Line("web.1", "web-x", s, 0); got != c.line {
				t.Errorf("line\n %s\nwant\n %s", got, c.line)
			}
		})
	}
	if _, err := (Reader{Root: t.TempDir(), ProcCgroup: []byte("0::/\n")}).Read(); err == nil {
		t.Error("an empty tree read without error")
	}
}

func TestLoad(t *testing.T) {
	var l Load
	t0 := time.Unix(0, 0)
	l.Add(t0, 0)
	// One CPU busy for a minute, in 20 s steps: 1 - e^-1 of the way to 1.
	var got float64
	for i := 1; i <= 3; i++ {
		got = l.Add(t0.Add(time.Duration(i)*20*time.Second), time.Duration(i)*20*time.Second)
	}
	if want := 1 - math.Exp(-1); math.Abs(got-want) > 1e-9 {
		t.Errorf("load %f, want %f", got, want)
	}
	// A counter that went back (a new cgroup) restarts the reference, keeps the average.
	if again := l.Add(t0.Add(80*time.Second), time.Second); again != got {
		t.Errorf("after reset %f, want %f", again, got)
	}
}
