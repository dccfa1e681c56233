package history

import (
	"fmt"
	"testing"
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

func (c *collect) Offer(recs [][]byte) {
	for _, rec := range recs {
		c.got = append(c.got, string(rec))
	}
}

func TestSubscribeSnapshotThenTail(t *testing.T) {
	h := New(3)
	h.Append([]byte("a"), []byte("b"), []byte("c"), []byte("d"))
	var snap []string
	sub := &collect{}
	cancel := h.Subscribe(func(rec []byte) bool { snap = append(snap, string(rec)); return true }, sub)
	h.Append([]byte("e"), []byte("f"))
	cancel()
	h.Append([]byte("g"))
	if fmt.Sprint(snap) != "[b c d]" || fmt.Sprint(sub.got) != "[e f]" {
		t.Fatalf("snapshot %v, tail %v", snap, sub.got)
	}
	// Without a subscriber: a snapshot only, and cancel is harmless.
	snap = nil
	h.Subscribe(func(rec []byte) bool { snap = append(snap, string(rec)); return true }, nil)()
	if fmt.Sprint(snap) != "[e f g]" {
		t.Fatalf("snapshot %v", snap)
	}
}
