package forward

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/session"
)

var keys = []routing.SessionKey{{ID: "k1", Key: strings.Repeat("5a", 32), Created: time.Now().UTC()}}

func wireRecs(texts ...string) [][]byte {
	out := make([][]byte, 0, len(texts))
	for i, s := range texts {
		out = append(out, message.AppendWireStrings(nil, 190, time.Unix(1700000000+int64(i), 0), "app", "web.1", s))
	}
	return out
}

// TestUnframeRoundTrip: frames as a runner builds them turn back into the same
// drain records; a frame with another drain's host, or cut short, is refused.
func TestUnframeRoundTrip(t *testing.T) {
	recs := wireRecs("one", "two with spaces", "")
	var b drain.Batch
	for _, r := range recs {
		b.AddRecord(r, "d.token")
	}
	got, err := Unframe(b.Bytes(), "d.token", nil)
	if err != nil || len(got) != len(recs) {
		t.Fatalf("Unframe = %d records, %v", len(got), err)
	}
	for i := range recs {
		if string(got[i]) != string(recs[i]) {
			t.Errorf("record %d = %q, want %q", i, got[i], recs[i])
		}
	}
	if _, err := Unframe(b.Bytes(), "d.other", nil); err == nil {
		t.Error("frames of another drain's host accepted")
	}
	if _, err := Unframe(b.Bytes()[:b.Size()-1], "d.token", nil); err == nil {
		t.Error("a cut frame accepted")
	}
	if _, err := Unframe(b.Bytes(), "d.tok", nil); err == nil {
		t.Error("a host prefix accepted as the host")
	}
}

// collect is a drain that records what its runner delivers.
type collect struct {
	mu   sync.Mutex
	got  []string
	done chan struct{}
	want int
}

func (c *collect) Limits() drain.Limits { return drain.Limits{Messages: 100, Bytes: 1 << 20} }
func (c *collect) Close() error         { return nil }
func (c *collect) Deliver(_ context.Context, b *drain.Batch) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range b.Len() {
		c.got = append(c.got, string(b.Frame(i)))
	}
	if len(c.got) >= c.want {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	return b.Len(), nil
}

type drains map[string]*drain.Runner

func (d drains) Delivering(id string) (*drain.Runner, bool) { r, ok := d[id]; return r, ok }

// TestForwardToOwner: a forwarding runner's batches reach the owner's runner in
// order and are counted as forwarded; an owner that says it is not one (409) is
// skipped for the next; unsigned, replayed and misaddressed calls are refused.
func TestForwardToOwner(t *testing.T) {
	cfg := &drain.Config{Drain: routing.Drain{ID: "ns/d", Token: "d.token"}}
	sink := &collect{done: make(chan struct{}), want: 3}
	ost := &drain.Stats{}
	owned := drain.NewRunner(cfg, drain.NewQueue(100, ost), ost, sink, drain.RunnerOptions{})
	defer owned.Stop(context.Background(), false)
	h := NewHandler(func() []routing.SessionKey { return keys }, drains{"ns/d": owned}, prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	defer srv.Close()
	notOwner := httptest.NewServer(NewHandler(func() []routing.SessionKey { return keys }, drains{}, prometheus.NewRegistry()))
	defer notOwner.Close()

	c := &Client{Self: "http://self", HTTP: srv.Client(), Keys: func() []routing.SessionKey { return keys },
		Owners: func(string) []string { return []string{"http://self", notOwner.URL, srv.URL} }}
	fst := &drain.Stats{}
	var reported []error
	var rmu sync.Mutex
	fd := c.NewDrain(cfg, drain.Env{Report: func(err error) { rmu.Lock(); reported = append(reported, err); rmu.Unlock() }}, false)
	fwd := drain.NewRunner(cfg, drain.NewQueue(100, fst), fst, fd, drain.RunnerOptions{})
	defer fwd.Stop(context.Background(), false)
	if !fwd.Forwarding() || owned.Forwarding() {
		t.Fatal("Forwarding() does not tell the forwarding runner")
	}
	fwd.Offer(wireRecs("a", "b", "c"))
	select {
	case <-sink.done:
	case <-time.After(30 * time.Second):
		t.Fatal("forwarded lines never delivered")
	}
	sink.mu.Lock()
	for i, want := range []string{"a", "b", "c"} {
		if !strings.HasSuffix(sink.got[i], " "+want) || !strings.Contains(sink.got[i], " d.token ") {
			t.Errorf("delivered line %d = %q, want text %q with the drain token", i, sink.got[i], want)
		}
	}
	sink.mu.Unlock()
	// The runner accounts right after the owner's answer.
	testenv.Until(t, "3 lines counted forwarded", func() bool { return fst.Forwarded.Load() == 3 })
	if fst.Delivered.Load() != 0 || fst.Dropped.Load() != 0 {
		t.Errorf("forwarder counted %d delivered, %d dropped; want 3 forwarded only", fst.Delivered.Load(), fst.Dropped.Load())
	}
	if fst.Status(0).LastSuccess != nil {
		t.Error("a forwarder reports a last success of the destination")
	}

	// Refusals, each before anything is offered.
	var b drain.Batch
	b.AddRecord(wireRecs("x")[0], "d.token")
	if err := c.send(context.Background(), srv.URL, "ns/d", b.Bytes(), ""); err != nil {
		t.Fatalf("signed call refused: %v", err)
	}
	bad := *c
	bad.Keys = func() []routing.SessionKey {
		return []routing.SessionKey{{ID: "k1", Key: strings.Repeat("6b", 32), Created: time.Now().UTC()}}
	}
	if err := bad.send(context.Background(), srv.URL, "ns/d", b.Bytes(), ""); err == nil || errors.Is(err, errUncertain) {
		t.Errorf("call signed with another key: %v, want a certain refusal", err)
	}
	if err := c.send(context.Background(), notOwner.URL, "ns/d", b.Bytes(), ""); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("call to a replica that is not an owner: %v, want 409", err)
	}
	// The same call twice: the second is a replay. A call for another replica's
	// address is refused.
	u, _ := url.Parse(srv.URL)
	call := func(to string) (body []byte, auth string) {
		hd, _ := json.Marshal(header{Drain: "ns/d", To: to, Nonce: session.NewNonce()})
		body = append(append(hd, '\n'), b.Bytes()...)
		auth, _ = session.SignPeerCall(keys, time.Now(), body)
		return body, auth
	}
	do := func(body []byte, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, bytes.NewReader(body))
		req.Header.Set(session.PeerAuthHeader, auth)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	body, auth := call(u.Host)
	if c1, c2 := do(body, auth), do(body, auth); c1 != http.StatusNoContent || c2 != http.StatusUnauthorized {
		t.Errorf("a call and its replay = %d, %d; want 204, 401", c1, c2)
	}
	if c := do(call("127.0.0.1:1")); c != http.StatusUnauthorized {
		t.Errorf("a call addressed to another replica = %d, want 401", c)
	}
}

// originCollect records each delivered frame's text and origin (an OriginUser, as
// the OTLP drain is).
type originCollect struct {
	collect
}

func (*originCollect) UsesOrigin() bool { return true }
func (c *originCollect) Deliver(_ context.Context, b *drain.Batch) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range b.Len() {
		pod, node := message.OriginNames(b.Origin(i))
		f := string(b.Frame(i))
		c.got = append(c.got, f[strings.LastIndexByte(f, ' ')+1:]+"@"+string(pod)+"/"+string(node))
	}
	if len(c.got) >= c.want {
		select {
		case <-c.done:
		default:
			close(c.done)
		}
	}
	return b.Len(), nil
}

// TestForwardOrigins: the origins of forwarded lines (pod and node of the
// collector that sent them) reach the owner's drain with each line, a line without
// one stays without; a call whose origins the signed header does not vouch for, or
// that are not pod and node names, is refused.
func TestForwardOrigins(t *testing.T) {
	cfg := &drain.Config{Drain: routing.Drain{ID: "ns/d", Token: "d.token"}}
	sink := &originCollect{collect{done: make(chan struct{}), want: 5}}
	ost := &drain.Stats{}
	owned := drain.NewRunner(cfg, drain.NewQueue(100, ost), ost, sink, drain.RunnerOptions{})
	defer owned.Stop(context.Background(), false)
	srv := httptest.NewServer(NewHandler(func() []routing.SessionKey { return keys }, drains{"ns/d": owned}, prometheus.NewRegistry()))
	defer srv.Close()
	c := &Client{Self: "http://self", HTTP: srv.Client(), Keys: func() []routing.SessionKey { return keys },
		Owners: func(string) []string { return []string{srv.URL} }}
	fst := &drain.Stats{}
	fd := c.NewDrain(cfg, drain.Env{Report: func(error) {}}, true)
	fwd := drain.NewRunner(cfg, drain.NewQueue(100, fst), fst, fd, drain.RunnerOptions{})
	defer fwd.Stop(context.Background(), false)

	from := func(origin []byte, texts ...string) [][]byte {
		out := make([][]byte, 0, len(texts))
		for _, s := range texts {
			out = append(out, message.AppendWireOrigin(nil, &message.Msg{Priority: 190, Time: 1700000000000000,
				Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte(s)}, origin))
		}
		return out
	}
	// One Offer, so that one batch carries three runs.
	recs := make([][]byte, 0, 5)
	recs = append(recs, from(message.AppendOrigin(nil, "web-1", "node-a"), "a", "b")...)
	recs = append(recs, from(nil, "c")...)
	recs = append(recs, from(message.AppendOrigin(nil, "web-2", ""), "d", "e")...)
	fwd.Offer(recs)
	select {
	case <-sink.done:
	case <-time.After(30 * time.Second):
		t.Fatal("forwarded lines never delivered")
	}
	sink.mu.Lock()
	want := []string{"a@web-1/node-a", "b@web-1/node-a", "c@/", "d@web-2/", "e@web-2/"}
	if strings.Join(sink.got, " ") != strings.Join(want, " ") {
		t.Errorf("owner's drain got %v, want %v", sink.got, want)
	}
	sink.mu.Unlock()

	// Calls whose origins are not what the signed header line says.
	var b drain.Batch
	b.KeepOrigins()
	for _, r := range from(message.AppendOrigin(nil, "web-1", "node-a"), "x") {
		b.AddRecord(r, "d.token")
	}
	good := fd.encodeOrigins(&b)
	if good == "" {
		t.Fatal("no origins encoded")
	}
	u, _ := url.Parse(srv.URL)
	do := func(value, digest string) int {
		hd, _ := json.Marshal(header{Drain: "ns/d", To: u.Host, Nonce: session.NewNonce(), Origins: digest})
		body := append(append(hd, '\n'), b.Bytes()...)
		auth, _ := session.SignPeerCall(keys, time.Now(), body)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+Path, bytes.NewReader(body))
		req.Header.Set(session.PeerAuthHeader, auth)
		if value != "" {
			req.Header.Set(OriginsHeader, value)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	digest := func(v string) string { s := sha256.Sum256([]byte(v)); return hex.EncodeToString(s[:]) }
	if code := do(good, digest(good)); code != http.StatusNoContent {
		t.Errorf("origins the header vouches for = %d, want 204", code)
	}
	forged := base64.RawStdEncoding.EncodeToString(append([]byte{1}, message.AppendOrigin(nil, "other-pod", "node-z")...))
	for name, tc := range map[string][2]string{
		"origins added to a signed call": {forged, ""},
		"origins replaced":               {forged, digest(good)},
		"digest without origins":         {"", digest(good)},
		"not a pod name":                 {base64.RawStdEncoding.EncodeToString(append([]byte{1}, message.AppendOrigin(nil, "Web 1", "")...)), ""},
		"runs longer than the batch":     {base64.RawStdEncoding.EncodeToString(append([]byte{2}, message.AppendOrigin(nil, "web-1", "")...)), ""},
	} {
		if tc[1] == "" && name != "origins added to a signed call" {
			tc[1] = digest(tc[0])
		}
		if code := do(tc[0], tc[1]); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
}

// TestForwardUnsentOnStop: a batch every owner refused before taking it (409) is
// returned as unsent (drain.ErrUnsent) when the forwarder is stopped, so a runner
// that takes over the drain may deliver it; one whose call was cut after it was
// sent is not.
func TestForwardUnsentOnStop(t *testing.T) {
	cfg := &drain.Config{Drain: routing.Drain{ID: "ns/d", Token: "d.token"}}
	notOwner := httptest.NewServer(NewHandler(func() []routing.SessionKey { return keys }, drains{}, prometheus.NewRegistry()))
	defer notOwner.Close()
	ctx, cancel := context.WithCancel(context.Background())
	rounds := 0
	c := &Client{Self: "http://self", HTTP: notOwner.Client(), Keys: func() []routing.SessionKey { return keys },
		Owners: func(string) []string {
			// Refused twice, then stopped before the third try.
			if rounds++; rounds == 3 {
				cancel()
			}
			return []string{notOwner.URL}
		}, RetryFor: time.Hour}
	fd := c.NewDrain(cfg, drain.Env{Report: func(error) {}}, false)
	var b drain.Batch
	b.AddRecord(wireRecs("x")[0], "d.token")
	if n, err := fd.Deliver(ctx, &b); n != 0 || !errors.Is(err, drain.ErrUnsent) {
		t.Errorf("refused batch at stop: %d, %v; want 0, unsent", n, err)
	}

	// An owner that hangs once it has the call: cut after it was sent.
	// ConnState is set before the server starts (its goroutines read it), and
	// closes got once however many connections become active.
	// The handler is released before Close, which waits for it.
	release := make(chan struct{})
	hang := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	got := make(chan struct{})
	var active sync.Once
	hang.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateActive {
			active.Do(func() { close(got) })
		}
	}
	hang.Start()
	defer hang.Close()
	defer close(release)
	c2 := &Client{Self: "http://self", HTTP: hang.Client(), Keys: func() []routing.SessionKey { return keys },
		Owners: func(string) []string { return []string{hang.URL} }}
	fd2 := c2.NewDrain(cfg, drain.Env{Report: func(error) {}}, false)
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { <-got; cancel2() }()
	if n, err := fd2.Deliver(ctx2, &b); n != 0 || errors.Is(err, drain.ErrUnsent) {
		t.Errorf("batch cut after it was sent: %d, %v; want 0, not unsent", n, err)
	}
}
