package ship

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/internal/backoff"
)

// reconnectTimes simulates n collectors whose router is gone from t=0 to t=down,
// each following the shipper's real retry schedule (its defaults, its backoff, its
// pause after a lost batch), and returns when each first reaches the router again.
// They all had a batch in flight when the router went: their first failures come
// within 10 ms of each other, the herd's worst case. jitter < 0 switches jitter off,
// to show what it buys.
func reconnectTimes(n int, down time.Duration, jitter float64, seed uint64) []time.Duration {
	s := New(queue.New(10, 1<<10), Options{})
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]time.Duration, n)
	for i := range out {
		t := time.Duration(r.Float64() * float64(10*time.Millisecond))
		for t < down {
			bo := backoff.Backoff{Min: s.opts.BackoffMin, Max: s.opts.BackoffMax, Jitter: jitter, Rand: r.Float64}
			for attempt := 1; attempt < s.opts.Attempts && t < down; attempt++ {
				t += bo.Next() // the attempt at t failed: wait, try again
			}
			if t >= down {
				break
			}
			pause := backoff.Backoff{Min: s.opts.BackoffMax, Max: s.opts.BackoffMax, Jitter: jitter, Rand: r.Float64}
			t += pause.Next() // the batch was given up (L13): pause, then the next one
		}
		out[i] = t - down
	}
	return out
}

// busiest returns the largest share of times falling in one bin of width w.
func busiest(times []time.Duration, w time.Duration) float64 {
	bins := map[time.Duration]int{}
	top := 0
	for _, t := range times {
		bins[t/w]++
		top = max(top, bins[t/w])
	}
	return float64(top) / float64(len(times))
}

// TestThousandCollectorsSpreadAfterRouterRestart: 1,000 collectors come back over
// seconds, not in one instant (issue 11, hole 6). The same model without jitter
// shows what was before: the collectors retry in lockstep.
func TestThousandCollectorsSpreadAfterRouterRestart(t *testing.T) {
	const n, down, bin = 1000, 30 * time.Second, 100 * time.Millisecond
	jittered := reconnectTimes(n, down, 0, 1)
	lockstep := reconnectTimes(n, down, -1, 1)
	j, l := busiest(jittered, bin), busiest(lockstep, bin)
	sort.Slice(jittered, func(a, b int) bool { return jittered[a] < jittered[b] })
	t.Logf("jittered: busiest %v holds %.1f%% of %d collectors; reconnects from +%v to +%v (median +%v)",
		bin, 100*j, n, jittered[0].Round(time.Millisecond), jittered[n-1].Round(time.Millisecond), jittered[n/2].Round(time.Millisecond))
	t.Logf("without jitter: busiest %v holds %.1f%%", bin, 100*l)
	if j > 0.15 {
		t.Errorf("jittered reconnects: %.1f%% of collectors within one %v, want at most 15%%", 100*j, bin)
	}
	if l < 0.9 {
		t.Errorf("the model without jitter spreads too (%.1f%%): it does not show the herd", 100*l)
	}
}
