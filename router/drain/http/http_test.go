package http_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	httpdrain "github.com/kubeplex/kubeplex/router/drain/http"
	"github.com/kubeplex/kubeplex/router/drainpeer"
	"github.com/kubeplex/kubeplex/router/message"
)

const (
	token   = "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	hmacKey = "5f2b9c0e7d41a8836b1e0f4a2c9d7e31"
)

type harness struct {
	runner *drain.Runner
	queue  *drain.Queue
	stats  *drain.Stats
	errs   atomic.Int64

	mu        sync.Mutex
	announced []string // platform lines (L14)
}

func (h *harness) Announced() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.announced)
}

func start(t *testing.T, d routing.Drain, opts httpdrain.Options, queue int) *harness {
	t.Helper()
	return startWith(t, d, opts, queue, drain.RunnerOptions{PauseMin: 10 * time.Millisecond, PauseMax: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
}

func startWith(t *testing.T, d routing.Drain, opts httpdrain.Options, queue int, ro drain.RunnerOptions, log *slog.Logger) *harness {
	t.Helper()
	u, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	d.ID, d.Token = "ns/d", token
	cfg := &drain.Config{Drain: d, App: "ns/app", URL: u}
	h := &harness{stats: &drain.Stats{}}
	h.queue = drain.NewQueue(queue, h.stats)
	env := drain.Env{
		Dialer:    &drain.Dialer{Policy: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		Logger:    log,
		Report:    func(err error) { h.errs.Add(1); h.stats.Fail(err, time.Now()) },
		UserAgent: "kubeplex-router/test",
		Announce:  func(s string) { h.mu.Lock(); h.announced = append(h.announced, s); h.mu.Unlock() },
	}
	s, err := httpdrain.New(cfg, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	ro.Logger = env.Logger
	h.runner = drain.NewRunner(cfg, h.queue, h.stats, s, ro)
	t.Cleanup(func() { h.stop(0) })
	return h
}

func (h *harness) stop(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	h.runner.Stop(ctx, false)
}

// push offers n lines in one queue operation, as one ingest batch would.
func (h *harness) push(from, n, pad int) {
	recs := make([][]byte, 0, n)
	for i := from; i < from+n; i++ {
		text := fmt.Sprint("line ", i)
		if pad > 0 {
			text += " " + strings.Repeat("x", pad)
		}
		recs = append(recs, message.AppendWireStrings(nil, 190, time.Unix(1764064800, 0), "app", "web.1", text))
	}
	h.runner.Offer(recs)
}

func TestHeadersAndSignature(t *testing.T) {
	rv := drainpeer.NewHTTPReceiver(t, nil, nil)
	h := start(t, routing.Drain{URL: rv.URL + "/drain?x=1", Username: "user", Password: "s3cret", HMACKey: hmacKey}, httpdrain.Options{}, 100)
	h.push(0, 3, 0)
	rv.WaitAccepted(t, 3)
	var total int
	for _, r := range rv.Requests() {
		hd := r.Header
		checks := map[string]string{
			"Content-Type":        wire.ContentType,
			wire.HeaderMsgCount:   strconv.Itoa(len(r.Msgs)),
			wire.HeaderDrainToken: token,
			"User-Agent":          "kubeplex-router/test",
		}
		for k, want := range checks {
			if got := hd.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if len(hd.Get(wire.HeaderFrameID)) != 36 {
			t.Errorf("frame id %q", hd.Get(wire.HeaderFrameID))
		}
		if r.User != "user" || r.Pass != "s3cret" {
			t.Errorf("basic auth %q:%q", r.User, r.Pass)
		}
		// Verify as a receiver would (docs/drains.md).
		mac := hmac.New(sha256.New, []byte(hmacKey))
		mac.Write(r.Body)
		if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); hd.Get(httpdrain.HeaderSignature) != want {
			t.Errorf("signature %q, want %q", hd.Get(httpdrain.HeaderSignature), want)
		}
		for _, m := range r.Msgs {
			if m.Hostname != token || m.AppName != "app" || m.ProcID != "web.1" {
				t.Errorf("message %+v", m)
			}
		}
		if r.Bad != 0 {
			t.Errorf("%d bad frames", r.Bad)
		}
		total += len(r.Msgs)
	}
	if total != 3 {
		t.Errorf("received %d messages", total)
	}
}

func TestBatchBounds(t *testing.T) {
	tests := []struct {
		name    string
		n, pad  int
		maxMsgs int
	}{
		{name: "small lines bounded by count", n: 3000, pad: 0, maxMsgs: 1024},
		{name: "1 KiB lines bounded by bytes", n: 400, pad: 1024, maxMsgs: 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			rv := drainpeer.NewHTTPReceiver(t, nil, func(n int, _ *drainpeer.Request) int {
				if n == 0 {
					<-release // hold the first batch so the queue fills
				}
				return 200
			})
			h := start(t, routing.Drain{URL: rv.URL}, httpdrain.Options{}, 10000)
			h.push(0, 1, tt.pad)
			testenv.Until(t, "first request", func() bool { return h.queue.Len() == 0 })
			h.push(1, tt.n-1, tt.pad)
			close(release)
			rv.WaitAccepted(t, tt.n)
			// Several requests are in flight at once: each is in order inside, and
			// together they hold every line once.
			if seen := linesInOrder(t, rv.Requests()); len(seen) != tt.n {
				t.Fatalf("%d distinct lines, want %d", len(seen), tt.n)
			}
			for _, r := range rv.Requests() {
				if len(r.Msgs) > tt.maxMsgs || len(r.Body) > 100<<10 {
					t.Errorf("batch of %d messages, %d bytes", len(r.Msgs), len(r.Body))
				}
			}
			if len(rv.Requests()) < 3 {
				t.Errorf("only %d requests", len(rv.Requests()))
			}
		})
	}
}

func TestRetriesKeepFrameID(t *testing.T) {
	answers := []int{500, 429, 503, 200}
	rv := drainpeer.NewHTTPReceiver(t, nil, func(n int, _ *drainpeer.Request) int {
		if n < len(answers) {
			return answers[n]
		}
		return 200
	})
	h := start(t, routing.Drain{URL: rv.URL}, httpdrain.Options{RequestOptions: drain.RequestOptions{Attempts: 4, MinBackoff: time.Millisecond}}, 100)
	h.push(0, 5, 0)
	rv.WaitAccepted(t, 5)
	reqs := rv.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	id := reqs[0].Header.Get(wire.HeaderFrameID)
	for i, r := range reqs {
		if r.Header.Get(wire.HeaderFrameID) != id || string(r.Body) != string(reqs[0].Body) {
			t.Errorf("attempt %d: frame id %q body differs=%v", i, r.Header.Get(wire.HeaderFrameID), string(r.Body) != string(reqs[0].Body))
		}
	}
	testenv.Until(t, "accounting", func() bool { return h.stats.Delivered.Load() == 5 })
	if h.stats.Dropped.Load() != 0 {
		t.Errorf("dropped %d", h.stats.Dropped.Load())
	}
}

// TestRefusedBatchAnnounced: a 4xx other than 429 drops the batch without retry; the
// drop is counted and announced in the next delivered batch. Retries exhausted on 5xx
// count the same way.
func TestRefusedBatchAnnounced(t *testing.T) {
	tests := []struct {
		name     string
		answers  []int
		attempts int
		requests int
	}{
		{name: "400 dropped at once", answers: []int{400}, attempts: 3, requests: 2},
		{name: "redirect not followed", answers: []int{302}, attempts: 3, requests: 2},
		{name: "5xx until attempts run out", answers: []int{500, 502, 503}, attempts: 3, requests: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			rv := drainpeer.NewHTTPReceiver(t, nil, func(n int, _ *drainpeer.Request) int {
				mu.Lock()
				defer mu.Unlock()
				if n < len(tt.answers) {
					return tt.answers[n]
				}
				return 200
			})
			h := start(t, routing.Drain{URL: rv.URL}, httpdrain.Options{RequestOptions: drain.RequestOptions{Attempts: tt.attempts, MinBackoff: time.Millisecond}}, 100)
			h.push(0, 4, 0)
			testenv.Until(t, "refusal", func() bool { return h.stats.Dropped.Load() == 4 })
			h.push(4, 2, 0)
			got := rv.WaitAccepted(t, 3)
			ann, other := drainpeer.L10Count(got)
			if ann != 4 || other != 2 {
				t.Errorf("accepted %d app messages and an L10 for %d, want 2 and 4: %v", other, ann, got)
			}
			// The refused attempts, then the notice and the new lines (in one batch or two,
			// depending on whether the lines were queued when the notice left).
			if r := len(rv.Requests()); r != tt.requests && r != tt.requests+1 {
				t.Errorf("%d requests, want %d or %d", r, tt.requests, tt.requests+1)
			}
			for _, r := range rv.Requests() {
				if a, _ := drainpeer.L10Count(r.Msgs); a > 0 && r.Header.Get(wire.HeaderMsgCount) != strconv.Itoa(len(r.Msgs)) {
					t.Errorf("msg count of the batch with the notice = %s, want %d (the notice counts)", r.Header.Get(wire.HeaderMsgCount), len(r.Msgs))
				}
			}
			if st := h.stats.Status(0); st.LastError == "" || st.Delivered != 2 || st.Dropped != 4 {
				t.Errorf("status %+v", st)
			}
			if h.stats.Announced.Load() != 4 {
				t.Errorf("announced %d", h.stats.Announced.Load())
			}
		})
	}
}

// TestSlowReceiverAccounting: a receiver slower than the producer (it answers nothing
// until every message was offered). Every message sent is either accepted by the
// receiver or announced to it in an L10 count.
func TestSlowReceiverAccounting(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	rv := drainpeer.NewHTTPReceiver(t, nil, func(int, *drainpeer.Request) int {
		<-release
		return 200
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before the receiver's own cleanup
	h := start(t, routing.Drain{URL: rv.URL}, httpdrain.Options{}, 1024)
	const n = 30000
	for i := 0; i < n; i += 100 {
		h.push(i, 100, 0)
	}
	once.Do(func() { close(release) })
	testenv.Until(t, "queue drained", func() bool {
		return h.stats.Delivered.Load()+h.stats.Dropped.Load() == n && h.queue.Len() == 0 &&
			h.stats.Announced.Load() == h.stats.Dropped.Load()
	})
	got := rv.Accepted()
	ann, other := drainpeer.L10Count(got)
	t.Logf("sent %d: receiver got %d messages and %d announced drops in %d requests", n, other, ann, len(rv.Requests()))
	if ann+other != n {
		t.Fatalf("sent %d != received %d + announced %d", n, other, ann)
	}
	if ann == 0 {
		t.Error("a slow receiver caused no drops; the test did not test overflow")
	}
	// Order is preserved inside each request among what survives, and no line
	// arrives twice.
	linesInOrder(t, rv.Requests())
}

// linesInOrder checks that each request's "line N" messages are in increasing order
// and that no line arrives twice (across requests too); it returns the lines seen.
func linesInOrder(t *testing.T, reqs []*drainpeer.Request) map[int]bool {
	t.Helper()
	seen := map[int]bool{}
	for _, r := range reqs {
		if r.Status != 200 {
			continue
		}
		last := -1
		for _, m := range r.Msgs {
			var i int
			if _, err := fmt.Sscanf(string(m.Text), "line %d", &i); err != nil {
				continue // an L10 notice
			}
			if i <= last {
				t.Fatalf("line %d after %d in one request", i, last)
			}
			if seen[i] {
				t.Fatalf("line %d delivered twice", i)
			}
			last, seen[i] = i, true
		}
	}
	return seen
}

func TestHTTPS(t *testing.T) {
	ca := testenv.NewCA(t)
	cert := ca.Server(t)
	rv := drainpeer.NewHTTPReceiver(t, &cert, nil)
	h := start(t, routing.Drain{URL: rv.URL, TLS: &routing.TLS{CAPEM: string(ca.PEM)}}, httpdrain.Options{}, 100)
	h.push(0, 2, 0)
	rv.WaitAccepted(t, 2)

	// Without the CA the certificate is refused and nothing is accepted; one L14
	// notice per failure streak names the receiver without its path.
	rv2 := drainpeer.NewHTTPReceiver(t, &cert, nil)
	h2 := start(t, routing.Drain{URL: rv2.URL + "/secret"}, httpdrain.Options{RequestOptions: drain.RequestOptions{Attempts: 2}}, 100)
	h2.push(0, 2, 0)
	testenv.Until(t, "drop", func() bool { return h2.stats.Dropped.Load() == 2 && h2.errs.Load() >= 2 })
	a := h2.Announced()
	if len(a) != 1 || !strings.HasPrefix(a[0], "Error L14 (certificate validation): error=") ||
		!strings.HasSuffix(a[0], ` uri="`+rv2.URL+`/"`) {
		t.Errorf("announced %q", a)
	}
	if len(h.Announced()) != 0 {
		t.Errorf("the verified drain announced %q", h.Announced())
	}
	if len(rv2.Requests()) != 0 {
		t.Error("request reached a receiver with an unverified certificate")
	}
	if st := h2.stats.Status(0); !strings.Contains(st.LastError, "certificate") {
		t.Errorf("last error %q", st.LastError)
	}
}

func TestNoCredentialsInErrors(t *testing.T) {
	h := start(t, routing.Drain{URL: "http://127.0.0.1:1/secret-path", Username: "user", Password: "s3cret"}, httpdrain.Options{RequestOptions: drain.RequestOptions{Attempts: 1}}, 10)
	h.push(0, 1, 0)
	testenv.Until(t, "error", func() bool { return h.errs.Load() > 0 })
	st := h.stats.Status(0)
	if strings.Contains(st.LastError, "s3cret") || strings.Contains(st.LastError, "secret-path") {
		t.Errorf("last error leaks: %q", st.LastError)
	}
	_ = http.StatusOK
}

// TestRequestsInFlight: a receiver that takes its time gets several batches at once
// (Options.MaxInFlight), each whole and in order inside, every line exactly once,
// and the accounting is exact.
func TestRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int64
	rv := drainpeer.NewHTTPReceiver(t, nil, func(n int, _ *drainpeer.Request) int {
		if n == 0 {
			return 200 // the drain delivers once: extra requests are for a drain that delivers
		}
		arrived.Add(1)
		<-release
		return 200
	})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	h := start(t, routing.Drain{URL: rv.URL}, httpdrain.Options{RequestOptions: drain.RequestOptions{MaxMessages: 100}}, 10000)
	h.push(0, 1, 0)
	testenv.Until(t, "first line delivered", func() bool { return h.stats.Delivered.Load() == 1 })
	const n = 1001
	h.push(1, n-1, 0)
	testenv.Until(t, "4 requests open at once", func() bool { return arrived.Load() == 4 })
	once.Do(func() { close(release) })
	rv.WaitAccepted(t, n)
	if seen := linesInOrder(t, rv.Requests()); len(seen) != n {
		t.Fatalf("%d distinct lines, want %d", len(seen), n)
	}
	testenv.Until(t, "accounting", func() bool { return h.stats.Delivered.Load() == n })
	if d := h.stats.Dropped.Load(); d != 0 {
		t.Errorf("dropped %d", d)
	}
}
