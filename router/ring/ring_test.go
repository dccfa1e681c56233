package ring

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

func contents(r *Ring) []string {
	var out []string
	r.Range(0, func(rec []byte) bool { out = append(out, string(rec)); return true })
	return out
}

func TestRingTable(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		push    []string
		resize  int
		want    []string
		evicted int
	}{
		{name: "under limit", max: 3, push: []string{"a", "b"}, want: []string{"a", "b"}},
		{name: "drop oldest", max: 3, push: []string{"a", "b", "c", "d", "e"}, want: []string{"c", "d", "e"}, evicted: 2},
		{name: "limit one", max: 1, push: []string{"a", "b"}, want: []string{"b"}, evicted: 1},
		{name: "empty records", max: 2, push: []string{"", "", ""}, want: []string{"", ""}, evicted: 1},
		{name: "shrink keeps newest", max: 5, push: []string{"a", "b", "c", "d"}, resize: 2, want: []string{"c", "d"}},
		{name: "grow keeps all", max: 2, push: []string{"a", "b"}, resize: 10, want: []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(tt.max)
			ev := 0
			for _, s := range tt.push {
				e, ok := r.Push([]byte(s))
				if !ok {
					t.Fatalf("Push(%q) refused", s)
				}
				if e {
					ev++
				}
			}
			if tt.resize > 0 {
				r.Resize(tt.resize)
			}
			if got := contents(r); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("contents = %q, want %q", got, tt.want)
			}
			if ev != tt.evicted {
				t.Errorf("evicted %d, want %d", ev, tt.evicted)
			}
		})
	}
}

func TestRingRefusesOversized(t *testing.T) {
	r := New(2)
	if _, ok := r.Push(make([]byte, MaxRecord+1)); ok {
		t.Fatal("oversized record accepted")
	}
	if _, ok := r.Push(make([]byte, MaxRecord)); !ok {
		t.Fatal("record of MaxRecord refused")
	}
	if r.Len() != 1 || r.Bytes() != MaxRecord {
		t.Fatalf("len %d bytes %d", r.Len(), r.Bytes())
	}
}

func TestRingPopLimits(t *testing.T) {
	r := New(10)
	for i := range 6 {
		r.Push(bytes.Repeat([]byte{byte('a' + i)}, 10))
	}
	var got []string
	n := r.Pop(4, 25, 0, func(rec []byte) { got = append(got, string(rec[:1])) })
	if n != 2 || fmt.Sprint(got) != "[a b]" {
		t.Fatalf("Pop by bytes = %d %v", n, got)
	}
	got = nil
	n = r.Pop(1, 1000, 0, func(rec []byte) { got = append(got, string(rec[:1])) })
	if n != 1 || fmt.Sprint(got) != "[c]" {
		t.Fatalf("Pop by count = %d %v", n, got)
	}
	// One record over the byte limit still comes out alone, so nothing is stuck.
	got = nil
	n = r.Pop(10, 5, 0, func(rec []byte) { got = append(got, string(rec[:1])) })
	if n != 1 || fmt.Sprint(got) != "[d]" {
		t.Fatalf("Pop over limit = %d %v", n, got)
	}
	// Overhead counts per record.
	n = r.Pop(10, 41, 10, func([]byte) {})
	if n != 2 || r.Len() != 0 {
		t.Fatalf("Pop with overhead = %d, left %d", n, r.Len())
	}
}

// TestRingModel runs random operations against a slice model.
func TestRingModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		max := 1 + rng.IntN(300)
		r := New(max)
		var model [][]byte
		for op := range 5000 {
			switch k := rng.IntN(100); {
			case k < 70:
				rec := bytes.Repeat([]byte{byte(op)}, rng.IntN(3000))
				r.Push(rec)
				model = append(model, rec)
				if len(model) > max {
					model = model[1:]
				}
			case k < 90:
				n := 1 + rng.IntN(50)
				limit := rng.IntN(20000)
				var popped [][]byte
				r.Pop(n, limit, 0, func(rec []byte) { popped = append(popped, bytes.Clone(rec)) })
				for i, p := range popped {
					if !bytes.Equal(p, model[i]) {
						t.Fatalf("round %d op %d: popped record %d differs", round, op, i)
					}
				}
				model = model[len(popped):]
			case k < 95:
				max = 1 + rng.IntN(300)
				r.Resize(max)
				if len(model) > max {
					model = model[len(model)-max:]
				}
			default:
				r.Reset()
				model = nil
			}
			if r.Len() != len(model) {
				t.Fatalf("round %d op %d: len %d, model %d", round, op, r.Len(), len(model))
			}
		}
		i := 0
		r.Range(0, func(rec []byte) bool {
			if !bytes.Equal(rec, model[i]) {
				t.Fatalf("round %d: record %d differs", round, i)
			}
			i++
			return true
		})
		live := 0
		for _, m := range model {
			live += len(m)
		}
		if r.Bytes() != live {
			t.Fatalf("round %d: bytes %d, model %d", round, r.Bytes(), live)
		}
	}
}

// TestRingFootprint checks the memory goal: a full ring of 1500 lines costs at most
// 235 bytes per buffered 204-byte frame (the budget: record + index + slack).
func TestRingFootprint(t *testing.T) {
	const lines = 1500
	// 204-byte frames become about 160-byte records once the drain token, framing and
	// timestamp text are gone; use the full 204 bytes to stay on the safe side.
	rec := bytes.Repeat([]byte("x"), 204)
	r := New(lines)
	for range 3 * lines {
		r.Push(rec)
	}
	per := float64(r.Footprint()) / lines
	t.Logf("footprint %d bytes for %d records: %.1f bytes/record", r.Footprint(), lines, per)
	if per > 235 {
		t.Errorf("%.1f bytes per record, budget 235", per)
	}
}

func BenchmarkRingPush(b *testing.B) {
	r := New(1500)
	rec := bytes.Repeat([]byte("x"), 160)
	b.ReportAllocs()
	for b.Loop() {
		r.Push(rec)
	}
}
