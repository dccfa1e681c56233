package backoff

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

func TestScheduleGrowsCapsAndResets(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second, Jitter: -1}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("step %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if !b.Failing() {
		t.Error("Failing false after failures")
	}
	b.Reset()
	if b.Failing() || b.Next() != 100*time.Millisecond {
		t.Error("Reset did not start over")
	}
}

func TestJitterStaysWithinTheUpperHalf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond, Rand: r.Float64}
	step := 100 * time.Millisecond
	seen := map[time.Duration]bool{}
	for range 200 {
		d := b.Next()
		if d < step/2 || d > step {
			t.Fatalf("wait %v outside [%v, %v]", d, step/2, step)
		}
		seen[d] = true
		step = min(2*step, 800*time.Millisecond)
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct waits in 200: jitter is not spreading", len(seen))
	}
}

func TestAtLeastHonoursTheAskAndStillAdvances(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: time.Second, Jitter: -1}
	if d := b.AtLeast(500 * time.Millisecond); d != 500*time.Millisecond {
		t.Errorf("AtLeast(500ms) = %v", d)
	}
	if d := b.AtLeast(0); d != 20*time.Millisecond {
		t.Errorf("AtLeast(0) after one step = %v, want 20ms: a receiver asking for nothing is still backed off", d)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep reported a full wait on a cancelled context")
	}
	if !Sleep(context.Background(), 0) {
		t.Error("Sleep(0) on a live context reported a cut")
	}
}
