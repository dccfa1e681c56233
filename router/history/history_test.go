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
