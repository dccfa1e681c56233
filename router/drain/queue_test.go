package drain

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

func rec(text string) []byte {
	return message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", text)
}

func msgs(t *testing.T, b *Batch) []wire.Message {
	t.Helper()
	var out []wire.Message
	for i := range b.Len() {
		_, err := wire.SplitFrames(b.Frame(i), 0, func(r []byte) error {
			m, err := wire.Parse(r)
			out = append(out, m)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func texts(t *testing.T, b *Batch) []string {
	t.Helper()
	ms := msgs(t, b)
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, string(m.Text))
	}
	return out
}

func TestQueueDropOldestAndL10(t *testing.T) {
	st := &Stats{}
	q := NewQueue(3, st)
	recs := make([][]byte, 0, 5)
	for i := range 5 {
		recs = append(recs, rec(fmt.Sprint("m", i)))
	}
	before := time.Now()
	q.push(recs)
	if got := st.Dropped.Load(); got != 2 {
		t.Fatalf("dropped %d, want 2", got)
	}
	var b Batch
	n, since := q.Take(&b, Limits{Messages: 10, Bytes: 1 << 20}, "d.x")
	if n != 2 || since.Before(before) {
		t.Fatalf("notice %d since %v", n, since)
	}
	got := texts(t, &b)
	if len(got) != 4 || !strings.HasPrefix(got[0], "Error L10 (output buffer overflow): 2 messages dropped since ") ||
		!strings.HasSuffix(got[0], ".") || fmt.Sprint(got[1:]) != "[m2 m3 m4]" {
		t.Fatalf("batch = %q", got)
	}
	if m := msgs(t, &b)[0]; m.AppName != "kubeplex" || m.ProcID != "router" || m.Hostname != "d.x" {
		t.Errorf("notice from %s %s[%s], want d.x kubeplex[router]", m.Hostname, m.AppName, m.ProcID)
	}
	// The notice was taken: the next batch carries none.
	q.push(recs[:1])
	if n, _ := q.Take(&b, Limits{Messages: 10, Bytes: 1 << 20}, "d.x"); n != 0 || b.Len() != 1 {
		t.Fatalf("second take: notice %d, len %d", n, b.Len())
	}
	// A notice put back is announced again, summed with new drops.
	q.restoreNotice(2, since)
	q.Dropped(3)
	if n, s := q.Take(&b, Limits{Messages: 10, Bytes: 1 << 20}, "d.x"); n != 5 || !s.Equal(since) {
		t.Fatalf("restored notice %d since %v, want 5 since %v", n, s, since)
	}
	if st.Offered.Load() != 6 || st.Dropped.Load() != 5 {
		t.Errorf("offered %d dropped %d", st.Offered.Load(), st.Dropped.Load())
	}
}

func TestQueueTakeLimits(t *testing.T) {
	q := NewQueue(100, &Stats{})
	r := rec(strings.Repeat("x", 100))
	for range 10 {
		q.push([][]byte{r})
	}
	var b Batch
	q.Take(&b, Limits{Messages: 4, Bytes: 1 << 20}, "d.x")
	if b.Len() != 4 {
		t.Fatalf("by count: %d", b.Len())
	}
	frame := len(b.Frame(0))
	q.Take(&b, Limits{Messages: 100, Bytes: 3*frame + 10}, "d.x")
	if b.Len() != 3 || b.Size() > 3*frame+10 {
		t.Fatalf("by bytes: %d frames, %d bytes", b.Len(), b.Size())
	}
	// A longer host makes bigger frames, so fewer fit.
	q.Take(&b, Limits{Messages: 100, Bytes: 3*frame + 10}, strings.Repeat("h", 60))
	if b.Len() != 2 {
		t.Fatalf("by bytes with a long host: %d", b.Len())
	}
	for i := range b.Len() {
		if !strings.Contains(string(b.Frame(i)), " "+strings.Repeat("h", 60)+" app web.1 ") {
			t.Fatalf("frame %q lacks the host", b.Frame(i))
		}
	}
}

func TestQueueClosed(t *testing.T) {
	st := &Stats{}
	q := NewQueue(10, st)
	q.push([][]byte{rec("a")})
	if n := q.close(); n != 1 {
		t.Fatalf("close returned %d", n)
	}
	q.push([][]byte{rec("b")})
	if st.Offered.Load() != 2 || st.Dropped.Load() != 1 {
		t.Errorf("offered %d dropped %d after push to closed queue", st.Offered.Load(), st.Dropped.Load())
	}
}

// takeDirect frames records straight into the batch only when that is the same as
// pushing them and taking them back: an empty, open queue and one batch's worth.
func TestQueueTakeDirect(t *testing.T) {
	lim := Limits{Messages: 10, Bytes: 1 << 20}
	tests := []struct {
		name    string
		queued  []string // pushed before
		drops   int64    // unannounced drops before
		closed  bool
		offer   int
		lim     Limits
		direct  bool
		want    []string // texts of the batch when direct
		offered int64
	}{
		{name: "empty queue", offer: 3, lim: lim, direct: true, want: []string{"o0", "o1", "o2"}, offered: 3},
		{name: "pending drops lead", drops: 4, offer: 2, lim: lim, direct: true,
			want: []string{"Error L10 (output buffer overflow): 4 messages dropped since", "o0", "o1"}, offered: 2},
		{name: "queued records go first", queued: []string{"q0"}, offer: 2, lim: lim, offered: 1},
		{name: "more than a batch", offer: 10, lim: lim},
		{name: "bigger than a batch", offer: 2, lim: Limits{Messages: 10, Bytes: 200}},
		{name: "closed", closed: true, offer: 1, lim: lim},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &Stats{}
			q := NewQueue(100, st)
			for _, s := range tt.queued {
				q.push([][]byte{rec(s)})
			}
			q.Dropped(tt.drops)
			if tt.closed {
				q.close()
			}
			var recs [][]byte
			for i := range tt.offer {
				recs = append(recs, rec(fmt.Sprint("o", i)))
			}
			var b Batch
			notice, _, ok := q.takeDirect(recs, &b, tt.lim, "d.x")
			if ok != tt.direct {
				t.Fatalf("direct = %v, want %v", ok, tt.direct)
			}
			if st.Offered.Load() != tt.offered {
				t.Errorf("offered %d, want %d", st.Offered.Load(), tt.offered)
			}
			if !ok {
				if q.Len() != len(tt.queued) && !tt.closed {
					t.Errorf("queue holds %d, want %d untouched", q.Len(), len(tt.queued))
				}
				return
			}
			if notice != tt.drops {
				t.Errorf("notice %d, want %d", notice, tt.drops)
			}
			got := texts(t, &b)
			if len(got) != len(tt.want) {
				t.Fatalf("batch = %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Fatalf("batch = %q, want %q", got, tt.want)
				}
			}
			if b.Enqueued == 0 {
				t.Error("batch has no enqueue stamp")
			}
		})
	}
}

// TestBatchGivesBackBigBuffer: a batch keeps the buffer that a backlog made big while
// batches keep needing it, and gives it back once shrinkAfter batches in a row needed
// less than a quarter of it (a drain that caught up), or on Release.
func TestBatchGivesBackBigBuffer(t *testing.T) {
	big := rec(strings.Repeat("x", 1000))
	fill := func(b *Batch, n int) {
		for range n {
			b.AddRecord(big, "d.host")
		}
	}
	var b Batch
	fill(&b, 256) // a backlog: ~256 KiB
	b.Reset()
	grown := cap(b.buf)
	if grown < 200<<10 {
		t.Fatalf("cap %d after a big batch", grown)
	}
	for range 3 * shrinkAfter { // a steady backlog keeps it
		fill(&b, 256)
		b.Reset()
	}
	if cap(b.buf) != grown {
		t.Fatalf("steady big batches: cap %d, want the same buffer (%d)", cap(b.buf), grown)
	}
	for i := range 2 * shrinkAfter { // caught up: small batches
		fill(&b, 2)
		b.Reset()
		if i < shrinkAfter-2 && cap(b.buf) != grown {
			t.Fatalf("buffer given back after only %d small batches", i+1)
		}
	}
	if cap(b.buf) > keepBytes {
		t.Fatalf("cap %d after %d small batches, want ≤ %d", cap(b.buf), 2*shrinkAfter, keepBytes)
	}
	fill(&b, 256)
	b.Release()
	if cap(b.buf) > keepBytes || b.Len() != 0 {
		t.Fatalf("after Release: cap %d, %d frames", cap(b.buf), b.Len())
	}
}
