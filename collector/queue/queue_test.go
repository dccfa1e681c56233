package queue

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func rec(i int) Entry { return Entry{Record: []byte(fmt.Sprintf("rec %d", i))} }

func texts(es []Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, string(e.Record))
	}
	return out
}

func TestDropOldest(t *testing.T) {
	tests := []struct {
		name       string
		maxEntries int
		maxBytes   int
		push       int
		wantKept   []string
		wantDrop   int
	}{
		{name: "under the bound", maxEntries: 4, push: 3, wantKept: []string{"rec 0", "rec 1", "rec 2"}},
		{name: "entry bound", maxEntries: 2, push: 5, wantKept: []string{"rec 3", "rec 4"}, wantDrop: 3},
		{name: "byte bound", maxEntries: 100, maxBytes: 11, push: 4, wantKept: []string{"rec 2", "rec 3"}, wantDrop: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := New(tt.maxEntries, tt.maxBytes)
			committed := 0
			for i := 0; i < tt.push; i++ {
				e := rec(i)
				e.Commit = func() { committed++ }
				q.Push(e)
			}
			got := texts(q.Take(nil, 100))
			if fmt.Sprint(got) != fmt.Sprint(tt.wantKept) {
				t.Errorf("kept %q, want %q", got, tt.wantKept)
			}
			l := q.TakeLoss()
			if l.Dropped != tt.wantDrop || committed != tt.wantDrop {
				t.Errorf("dropped %d (committed %d), want %d", l.Dropped, committed, tt.wantDrop)
			}
			if l.Dropped > 0 && l.DroppedSince.IsZero() {
				t.Error("drop without a since time")
			}
			if !q.TakeLoss().Zero() {
				t.Error("TakeLoss did not reset")
			}
		})
	}
}

// A dropped or lost notice from a wrapper counts the messages it announced, so the
// sum stays exact across the wrapper and the sidecar.
func TestCarriedNotices(t *testing.T) {
	since := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	q := New(1, 0)
	q.Push(Entry{Record: []byte("notice"), Carried: 7, Since: since})
	q.Push(rec(1)) // drops the notice
	l := q.TakeLoss()
	if l.Dropped != 7 || !l.DroppedSince.Equal(since) {
		t.Errorf("loss %+v, want 7 dropped since %v", l, since)
	}
	es := []Entry{{Record: []byte("n"), Carried: 5, Since: since}, rec(2), rec(3)}
	q.LoseEntries(es, since.Add(time.Hour))
	if l := q.TakeLoss(); l.Lost != 7 || !l.LostSince.Equal(since) {
		t.Errorf("loss %+v, want 7 lost since %v", l, since)
	}
}

func TestPushWaitWaitsForRoom(t *testing.T) {
	q := New(1, 0)
	q.Push(rec(0))
	done := make(chan error, 1)
	go func() { done <- q.PushWait(context.Background(), rec(1)) }()
	select {
	case err := <-done:
		t.Fatalf("PushWait returned %v on a full queue", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got := texts(q.Take(nil, 1)); got[0] != "rec 0" {
		t.Fatalf("took %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := texts(q.Take(nil, 1)); got[0] != "rec 1" || !q.PeekLoss().Zero() {
		t.Errorf("took %q, loss %+v", got, q.PeekLoss())
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.Push(rec(2))
	cancel()
	if err := q.PushWait(ctx, rec(3)); err == nil {
		t.Error("PushWait on a full queue ignored its cancelled context")
	}
}

func TestNoticeRoundTrip(t *testing.T) {
	since := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	for _, dropped := range []bool{true, false} {
		txt := AppendNotice(nil, dropped, 42, since)
		n, got, ok := ParseNotice(txt)
		if !ok || n != 42 || !got.Equal(since) {
			t.Errorf("%q parsed as %d %v %v", txt, n, got, ok)
		}
	}
	if want := "Error L12: 42 messages dropped since 2026-11-25T10:00:00.123456+00:00"; string(AppendNotice(nil, true, 42, since)) != want {
		t.Errorf("L12 text %q, want %q", AppendNotice(nil, true, 42, since), want)
	}
	for _, bad := range []string{"Error L12: x messages dropped since 2026-11-25T10:00:00.123456+00:00",
		"Error L12: 3 messages lost since 2026-11-25T10:00:00.123456+00:00", "Error L12: 3 messages dropped since then", "hello"} {
		if _, _, ok := ParseNotice([]byte(bad)); ok {
			t.Errorf("%q accepted as a notice", bad)
		}
	}
}
