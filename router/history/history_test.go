package history

import (
	"fmt"
	"testing"

	"github.com/kubeplex/kubeplex/router/ring"
)

func TestLastAndResize(t *testing.T) {
	h := New(5)
	for i := range 8 {
		h.Append([]byte(fmt.Sprint(i)))
	}
	last := func(n int) string {
		var out []string
		h.Last(n, func(rec []byte) bool { out = append(out, string(rec)); return true })
		return fmt.Sprint(out)
	}
	tests := []struct {
		n    int
		want string
	}{
		{n: 2, want: "[6 7]"},
		{n: 5, want: "[3 4 5 6 7]"},
		{n: 100, want: "[3 4 5 6 7]"},
		{n: 0, want: "[]"},
	}
	for _, tt := range tests {
		if got := last(tt.n); got != tt.want {
			t.Errorf("Last(%d) = %s, want %s", tt.n, got, tt.want)
		}
	}
	h.Resize(2)
	if got := last(10); got != "[6 7]" || h.Len() != 2 {
		t.Errorf("after Resize(2): %s", got)
	}
	// Stopping early.
	n := 0
	h.Last(10, func([]byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("fn called %d times after returning false", n)
	}
	h.Release()
	if h.Len() != 0 {
		t.Error("Release kept lines")
	}
}

type collect struct{ got []string }

func (c *collect) Offer(first uint64, recs [][]byte) {
	for i, rec := range recs {
		c.got = append(c.got, fmt.Sprint(first+uint64(i), ":", string(rec)))
	}
}

func TestSubscribeSnapshotThenTail(t *testing.T) {
	h := New(3)
	h.Append([]byte("a"), []byte("b"), []byte("c"), []byte("d"))
	var snap []string
	sub := &collect{}
	record := func(seq uint64, rec []byte) bool { snap = append(snap, fmt.Sprint(seq, ":", string(rec))); return true }
	last, cancel := h.Subscribe(record, sub)
	h.Append([]byte("e"), []byte("f"))
	cancel()
	h.Append([]byte("g"))
	// Numbers follow the order of appending, whatever was evicted.
	if fmt.Sprint(snap) != "[2:b 3:c 4:d]" || fmt.Sprint(sub.got) != "[5:e 6:f]" || last != 4 {
		t.Fatalf("snapshot %v (last %d), tail %v", snap, last, sub.got)
	}
	// A snapshot that stops early still says where the tail starts.
	if last, cancel := h.Subscribe(func(uint64, []byte) bool { return false }, nil); last != 7 {
		t.Fatalf("last %d, want 7", last)
	} else {
		cancel()
	}
	// Without a subscriber: a snapshot only, and cancel is harmless.
	snap = nil
	_, cancel = h.Subscribe(record, nil)
	cancel()
	if fmt.Sprint(snap) != "[5:e 6:f 7:g]" {
		t.Fatalf("snapshot %v", snap)
	}
	// A record too long to store is neither numbered nor offered.
	sub = &collect{}
	h.Subscribe(func(uint64, []byte) bool { return true }, sub)
	h.Append([]byte("h"), make([]byte, ring.MaxRecord+1), []byte("i"))
	snap = nil
	_, cancel = h.Subscribe(record, nil)
	cancel()
	if fmt.Sprint(snap) != "[7:g 8:h 9:i]" || fmt.Sprint(sub.got) != "[8:h 9:i]" {
		t.Fatalf("after a refused record: snapshot %v, tail %v", snap, sub.got)
	}
	if h.ID() == 0 || New(3).ID() == h.ID() {
		t.Fatalf("history IDs %d and a new one's must differ and not be 0", h.ID())
	}
}
