package drain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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

func TestDialerCheck(t *testing.T) {
	tests := []struct {
		ip    string
		allow []string
		ok    bool
	}{
		{ip: "127.0.0.1", ok: false},
		{ip: "127.0.0.1", allow: []string{"127.0.0.0/8"}, ok: true},
		{ip: "::1", allow: []string{"127.0.0.0/8"}, ok: false},
		{ip: "::ffff:127.0.0.1", ok: false},
		{ip: "10.1.2.3", ok: false},
		{ip: "172.16.0.1", ok: false},
		{ip: "192.168.1.1", ok: false},
		{ip: "169.254.169.254", ok: false}, // cloud metadata
		{ip: "100.64.0.1", ok: false},
		{ip: "0.0.0.0", ok: false},
		{ip: "fe80::1", ok: false},
		{ip: "fd00::1", ok: false},
		{ip: "224.0.0.1", ok: false},
		{ip: "10.1.2.3", allow: []string{"10.1.0.0/16"}, ok: true},
		{ip: "93.184.216.34", ok: true},
		{ip: "2606:2800:220:1::1", ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.ip+fmt.Sprint(tt.allow), func(t *testing.T) {
			allow, _, err := ParseAllow(tt.allow)
			if err != nil {
				t.Fatal(err)
			}
			d := &Dialer{Allow: allow}
			err = d.Check(netip.MustParseAddr(tt.ip))
			if (err == nil) != tt.ok {
				t.Errorf("Check(%s) = %v, want ok=%v", tt.ip, err, tt.ok)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/99", "logs*.example.com", "[::1]:80"} {
		if _, _, err := ParseAllow([]string{bad}); err == nil {
			t.Errorf("ParseAllow accepted %q", bad)
		}
	}
}

// TestDialerAllowHosts dials a real listener by name: an allowlisted host name may
// resolve to loopback, any other name may not, and the entry forms parse as the
// manager's --allow-cidrs does.
func TestDialerAllowHosts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // the test is over
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close() // accepting was the point
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	prefixes, hosts, err := ParseAllow([]string{" 192.0.2.7 ", "LocalHost.", "*.corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(prefixes) != 1 || prefixes[0].String() != "192.0.2.7/32" || len(hosts) != 2 || hosts[0] != "localhost" {
		t.Fatalf("ParseAllow = %v %v", prefixes, hosts)
	}
	tests := []struct {
		name  string
		hosts []string
		addr  string
		ok    bool
	}{
		{name: "allowlisted name", hosts: hosts, addr: "localhost:" + port, ok: true},
		{name: "name not allowlisted", hosts: []string{"*.corp.example"}, addr: "localhost:" + port, ok: false},
		{name: "address is not a name", hosts: hosts, addr: "127.0.0.1:" + port, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dialer{AllowHosts: tt.hosts}
			c, err := d.DialContext(context.Background(), "tcp4", tt.addr)
			if c != nil {
				_ = c.Close() // connecting was the point
			}
			if (err == nil) != tt.ok {
				t.Fatalf("dial %s: %v, want ok=%v", tt.addr, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("dial %s failed for another reason: %v", tt.addr, err)
			}
		})
	}
	if !(&Dialer{AllowHosts: hosts}).hostAllowed("logs.corp.example") || (&Dialer{AllowHosts: hosts}).hostAllowed("corp.example") {
		t.Error("wildcard host matching is wrong")
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
