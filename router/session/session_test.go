package session

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
)

var testKeys = []routing.SessionKey{{ID: "k1", Key: strings.Repeat("ab", 32)}}

// replica is one router's session surface: a dispatcher and the handler, served by
// a real HTTP server on 127.0.0.1.
type replica struct {
	d   *dispatch.Dispatcher
	h   *Handler
	srv *httptest.Server
}

type peerList struct {
	mu   sync.Mutex
	urls []string
}

func (p *peerList) Peers() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.urls
}

// replicas starts n replicas that know each other and run the same table; configure
// (if any) sets up each server before it starts.
func replicas(t *testing.T, n int, configure ...func(*http.Server)) []*replica {
	t.Helper()
	tbl := routing.Table{Apps: []routing.App{{ID: "shop/web"}, {ID: "other/web"}}, SessionKeys: testKeys}
	tbl.Seal()
	rs := make([]*replica, 0, n)
	lists := make([]*peerList, n)
	for i := range n {
		d := dispatch.New(dispatch.Options{Logger: slog.New(slog.DiscardHandler), Router: fmt.Sprint("r", i)})
		if err := d.Apply(&tbl); err != nil {
			t.Fatal(err)
		}
		lists[i] = &peerList{}
		h := New(d, lists[i], Options{}, nil, nil, slog.New(slog.DiscardHandler))
		h.SetKeys(tbl.SessionKeys)
		mx := http.NewServeMux()
		h.Mount(mx)
		srv := httptest.NewUnstartedServer(h.Intercept(mx))
		for _, c := range configure {
			c(srv.Config)
		}
		srv.Start()
		t.Cleanup(srv.Close)
		rs = append(rs, &replica{d: d, h: h, srv: srv})
	}
	for i := range n {
		for j, r := range rs {
			if j != i {
				lists[i].urls = append(lists[i].urls, r.srv.URL)
			}
		}
	}
	return rs
}

func (r *replica) publish(t *testing.T, app string, at time.Time, source, proc, text string) {
	t.Helper()
	a, ok := r.d.App(app)
	if !ok {
		t.Fatalf("no app %s", app)
	}
	a.Publish([][]byte{message.AppendStrings(nil, 190, at, source, proc, text)})
}

func sessionID(t *testing.T, c session.Claims) string {
	t.Helper()
	id, err := session.Sign(c, testKeys, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func get(t *testing.T, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end below
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var netDialer net.Dialer

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// TestHistoryMergedAcrossReplicas: lines sent to three replicas, interleaved in time,
// come back from any of them in timestamp order, the newest `lines` of them.
func TestHistoryMergedAcrossReplicas(t *testing.T) {
	rs := replicas(t, 3)
	for i := range 30 {
		rs[i%3].publish(t, "shop/web", t0.Add(time.Duration(i)*time.Millisecond), "app", fmt.Sprintf("web.%d", i%3+1), fmt.Sprint("line ", i))
	}
	rs[0].publish(t, "other/web", t0, "app", "web.1", "secret of other")
	for _, r := range rs {
		_, body := get(t, r.srv.URL+Path+sessionID(t, session.Claims{Namespace: "shop", App: "web", Lines: 25}))
		lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
		if len(lines) != 25 {
			t.Fatalf("%d lines, want 25:\n%s", len(lines), body)
		}
		for k, l := range lines {
			i := k + 5
			want := fmt.Sprintf("%s app[web.%d]: line %d", t0.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02T15:04:05.000000+00:00"), i%3+1, i)
			if l != want {
				t.Fatalf("line %d = %q, want %q", k, l, want)
			}
		}
		if strings.Contains(body, "secret of other") {
			t.Fatal("a session of shop/web shows a line of other/web")
		}
	}
}

func TestFilters(t *testing.T) {
	rs := replicas(t, 2)
	at := t0
	send := func(r *replica, source, proc string) {
		at = at.Add(time.Millisecond)
		r.publish(t, "shop/web", at, source, proc, source+" "+proc)
	}
	send(rs[0], "app", "web.1")
	send(rs[1], "app", "web.2")
	send(rs[0], "app", "worker.1")
	send(rs[1], "kubeplex", "web.1")
	send(rs[0], "app", "webhook.1")
	send(rs[1], "app", "web")
	tests := []struct {
		source, dyno string
		want         []string
	}{
		{"", "", []string{"app web.1", "app web.2", "app worker.1", "kubeplex web.1", "app webhook.1", "app web"}},
		{"app", "", []string{"app web.1", "app web.2", "app worker.1", "app webhook.1", "app web"}},
		{"kubeplex", "", []string{"kubeplex web.1"}},
		{"", "web", []string{"app web.1", "app web.2", "kubeplex web.1", "app web"}},
		{"", "web.1", []string{"app web.1", "kubeplex web.1"}},
		{"app", "web.2", []string{"app web.2"}},
		{"", "worker", []string{"app worker.1"}},
		{"nobody", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.source+"/"+tt.dyno, func(t *testing.T) {
			id := sessionID(t, session.Claims{Namespace: "shop", App: "web", Lines: 100, Source: tt.source, Dyno: tt.dyno})
			_, body := get(t, rs[1].srv.URL+Path+id+"?format=json")
			var got []string
			for l := range strings.SplitSeq(strings.TrimSpace(body), "\n") {
				if l == "" {
					continue
				}
				i := strings.Index(l, `"message":"`)
				got = append(got, strings.TrimSuffix(l[i+len(`"message":"`):], `"}`))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRefused: every kind of bad URL gets a plain refusal and no line.
func TestRefused(t *testing.T) {
	rs := replicas(t, 1)
	rs[0].publish(t, "shop/web", t0, "app", "web.1", "private line")
	good := sessionID(t, session.Claims{Namespace: "shop", App: "web", Lines: 10})
	expired, err := session.Sign(session.Claims{Namespace: "shop", App: "web", Lines: 10}, testKeys, time.Now().Add(-2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := session.Sign(session.Claims{Namespace: "shop", App: "web", Lines: 10},
		[]routing.SessionKey{{ID: "k1", Key: strings.Repeat("cd", 32)}}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	missing := sessionID(t, session.Claims{Namespace: "shop", App: "gone", Lines: 10})
	tests := []struct {
		name, path string
		code       int
	}{
		{"expired (replayed after expiry)", Path + expired, http.StatusForbidden},
		{"forged (other key)", Path + otherKey, http.StatusNotFound},
		{"truncated", Path + good[:len(good)-3], http.StatusNotFound},
		{"truncated payload", Path + good[5:], http.StatusNotFound},
		{"app not in table", Path + missing, http.StatusNotFound},
		{"dot dot", "/sessions/../status", http.StatusNotFound},
		{"encoded dot dot", "/sessions/%2e%2e/status", http.StatusNotFound},
		{"double encoded", "/sessions/%252e%252e%252fstatus", http.StatusNotFound},
		{"encoded slash", "/sessions/" + strings.Replace(good, ".", "%2F", 1), http.StatusNotFound},
		{"trailing path", Path + good + "/x", http.StatusNotFound},
		{"over-long", Path + strings.Repeat("a", 3000) + "." + good, http.StatusNotFound},
		{"empty", "/sessions/", http.StatusNotFound},
		{"bare", "/sessions", http.StatusNotFound},
		{"double slash", "/sessions//" + good, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A raw request line: Go's client would clean some of these paths.
			resp, body := rawGet(t, rs[0].srv.Listener.Addr().String(), tt.path)
			if resp.StatusCode != tt.code || strings.Contains(body, "private line") || strings.Count(body, "\n") > 1 {
				t.Fatalf("%s = %d %q, want %d and a one-line reason", tt.path, resp.StatusCode, body, tt.code)
			}
		})
	}
	if resp, body := get(t, rs[0].srv.URL+Path+good); resp.StatusCode != http.StatusOK || !strings.Contains(body, "private line") {
		t.Fatalf("good id = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, rs[0].srv.URL+Path+good, "Accept", "text/html"); resp.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("html without a viewer = %d, want 406", resp.StatusCode)
	}
}

func rawGet(t *testing.T, addr, path string) (*http.Response, string) {
	t.Helper()
	c, err := (&netDialer).DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // test connection
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPeerCallsNeedAuthentication: without a valid signature from a session key, a
// replica gives nothing; a call signed for another replica, without a nonce, or
// played a second time gives nothing either.
func TestPeerCallsNeedAuthentication(t *testing.T) {
	rs := replicas(t, 2)
	rs[0].publish(t, "shop/web", t0, "app", "web.1", "private line")
	here := strings.TrimPrefix(rs[0].srv.URL, "http://")
	body := func(to, nonce string) string {
		return fmt.Sprintf(`{"app":"shop/web","lines":10,"to":%q,"nonce":%q}`, to, nonce)
	}
	post := func(auth, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, rs[0].srv.URL+PeerPath, strings.NewReader(body))
		if auth != "" {
			req.Header.Set(PeerAuthHeader, auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	now := time.Now()
	sign := func(at time.Time, keys []routing.SessionKey, b string) string {
		a, _ := signPeer(keys, at, []byte(b))
		return a
	}
	good := body(here, newNonce())
	forOther := body(strings.TrimPrefix(rs[1].srv.URL, "http://"), newNonce())
	forgedKeys := []routing.SessionKey{{ID: "k1", Key: strings.Repeat("cd", 32)}}
	for name, c := range map[string]struct{ auth, body string }{
		"none":       {"", good},
		"stale":      {sign(now.Add(-time.Minute), testKeys, good), good},
		"forged":     {sign(now, forgedKeys, good), good},
		"other body": {sign(now, testKeys, body(here, newNonce())), good},
		"junk":       {"k1 1 x", good},
		// Signed properly, but for the other replica: played here it is refused.
		"for another replica": {sign(now, testKeys, forOther), forOther},
		"no nonce":            {sign(now, testKeys, body(here, "")), body(here, "")},
	} {
		if code, out := post(c.auth, c.body); code != http.StatusUnauthorized || strings.Contains(out, "private") {
			t.Errorf("%s: %d %q, want 401", name, code, out)
		}
	}
	auth := sign(now, testKeys, good)
	if code, b := post(auth, good); code != http.StatusOK || !strings.Contains(b, "private line") {
		t.Errorf("authenticated: %d %q", code, b)
	}
	// The same call again, within its time window: a replay.
	if code, b := post(auth, good); code != http.StatusUnauthorized || strings.Contains(b, "private") || !strings.Contains(b, "replayed") {
		t.Errorf("replayed call: %d %q, want 401 replayed", code, b)
	}
}

// readLines reads lines from a streaming response into a channel.
func readLines(body io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return l
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no line")
	}
	return ""
}

// TestTailFromEveryReplica: a tail session opened on one replica gets its history,
// then new lines sent to each of the replicas.
func TestTailFromEveryReplica(t *testing.T) {
	rs := replicas(t, 3)
	rs[2].publish(t, "shop/web", t0, "app", "web.1", "before")
	id := sessionID(t, session.Claims{Namespace: "shop", App: "web", Lines: 5, Tail: true})
	resp, err := http.Get(rs[0].srv.URL + Path + id)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	lines := readLines(resp.Body)
	if l := next(t, lines); !strings.HasSuffix(l, "app[web.1]: before") {
		t.Fatalf("history line %q", l)
	}
	// Every peer subscribed its tail when it answered history, before the session
	// sent the history line: a line sent to each replica now must arrive.
	for i, r := range rs {
		r.publish(t, "shop/web", time.Now(), "app", "web.1", fmt.Sprintf("from r%d", i))
	}
	rs[1].publish(t, "other/web", time.Now(), "app", "web.1", "other app")
	seen := map[string]bool{}
	for len(seen) < 3 {
		l := next(t, lines)
		if strings.Contains(l, "other app") {
			t.Fatal("tail shows another app's line")
		}
		_, from, ok := strings.Cut(l, ": from ")
		if !ok || seen[from] {
			t.Fatalf("unexpected line %q (seen %v)", l, seen)
		}
		seen[from] = true
	}
}

// TestTailOutlivesServerTimeouts: the router's server has read and write timeouts;
// a tail (and the peer streams behind it) must outlive them.
func TestTailOutlivesServerTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	rs := replicas(t, 2, func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = timeout, timeout })
	id := sessionID(t, session.Claims{Namespace: "shop", App: "web", Tail: true})
	resp, err := http.Get(rs[0].srv.URL + Path + id)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	lines := readLines(resp.Body)
	start := time.Now()
	// Lines through both replicas until well past the timeouts; each must arrive.
	for i := 0; time.Since(start) < 4*timeout; i++ {
		for k, r := range rs {
			r.publish(t, "shop/web", time.Now(), "app", "web.1", fmt.Sprint(i, "-", k))
			if l := next(t, lines); !strings.HasSuffix(l, fmt.Sprint(": ", i, "-", k)) {
				t.Fatalf("line %q, want %d-%d", l, i, k)
			}
		}
	}
}

func httptestRequest(query, accept string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/sessions/x?"+query, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	return r
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct{ id, event, data string }

func readEvents(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		var ev sseEvent
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "":
				ch <- ev
				ev = sseEvent{}
			case strings.HasPrefix(l, "id: "):
				ev.id = l[4:]
			case strings.HasPrefix(l, "event: "):
				ev.event = l[7:]
			case strings.HasPrefix(l, "data: "):
				ev.data = l[6:]
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no event")
	}
	return sseEvent{}
}

// TestEventStream: SSE sends a fresh session URL first, lines with cursors, a fresh
// URL again later that continues after the last cursor, and honours Last-Event-ID.
func TestEventStream(t *testing.T) {
	rs := replicas(t, 2)
	rs[0].h.opts.ReissueEvery = 50 * time.Millisecond
	for i := range 4 {
		rs[i%2].publish(t, "shop/web", t0.Add(time.Duration(i)*time.Millisecond), "app", "web.1", fmt.Sprint("line ", i))
	}
	claims := session.Claims{Namespace: "shop", App: "web", Lines: 3, Tail: true, Dyno: "web"}
	req, _ := http.NewRequest(http.MethodGet, rs[0].srv.URL+Path+sessionID(t, claims), nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	evs := readEvents(resp.Body)
	reissued := func(ev sseEvent) *session.Claims {
		t.Helper()
		var d struct{ URL, ExpiresAt string }
		if ev.event != "session" || json.Unmarshal([]byte(ev.data), &d) != nil || d.ExpiresAt == "" {
			t.Fatalf("session event %+v", ev)
		}
		id := d.URL[strings.LastIndex(d.URL, "/")+1:]
		if !strings.HasPrefix(d.URL, rs[0].srv.URL+Path) {
			t.Fatalf("re-issued URL %q", d.URL)
		}
		c, err := session.Verify(id, testKeys, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if c.AppID() != "shop/web" || c.Lines != 3 || !c.Tail || c.Dyno != "web" || c.Nonce == "" {
			t.Fatalf("re-issued claims %+v", c)
		}
		return c
	}
	if c := reissued(nextEvent(t, evs)); c.Since != 0 {
		t.Fatalf("first re-issue since %d", c.Since)
	}
	var last string
	for i := 1; i < 4; i++ {
		ev := nextEvent(t, evs)
		if ev.event != "line" || !strings.Contains(ev.data, fmt.Sprintf(`"message":"line %d"`, i)) ||
			!strings.HasPrefix(ev.id, fmt.Sprint(t0.Add(time.Duration(i)*time.Millisecond).UnixMicro(), "-")) {
			t.Fatalf("event %+v, want line %d", ev, i)
		}
		last = ev.id
	}
	// History is complete; the tail follows, from where the last line left it (each
	// replica's newest line was sent).
	if ev := nextEvent(t, evs); ev.event != "tail" || ev.id != last {
		t.Fatalf("after history: %+v, want a tail event with id %s", ev, last)
	}
	// The next re-issue continues after the newest line sent, exactly where the
	// stream stands in both replicas (both number their lines).
	if c := reissued(nextEvent(t, evs)); !strings.HasPrefix(last, fmt.Sprint(c.Since, "-")) || len(c.Seen) != 1 || len(c.Pos) != 2 {
		t.Fatalf("re-issue since %d seen %v, want the cursor %s", c.Since, c.Seen, last)
	}

	// A reconnecting EventSource sends Last-Event-ID: nothing at or before it again.
	req, _ = http.NewRequest(http.MethodGet, rs[1].srv.URL+Path+sessionID(t, session.Claims{Namespace: "shop", App: "web", Lines: 10})+"?format=sse", nil)
	req.Header.Set("Last-Event-ID", fmt.Sprint(t0.Add(2*time.Millisecond).UnixMicro()))
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp2.Body.Close() }()
	evs = readEvents(resp2.Body)
	reissuedEv := nextEvent(t, evs)
	if reissuedEv.event != "session" {
		t.Fatalf("first event %+v", reissuedEv)
	}
	if ev := nextEvent(t, evs); !strings.Contains(ev.data, `"message":"line 3"`) {
		t.Fatalf("after Last-Event-ID: %+v", ev)
	}
	if ev := nextEvent(t, evs); ev.event != "end" {
		t.Fatalf("want end, got %+v", ev)
	}
}

// TestEventStreamCursorIsExact: lines in the same microsecond as the cursor that the
// stream had not sent yet come after a reconnect, from every replica; those it sent
// do not come again.
func TestEventStreamCursorIsExact(t *testing.T) {
	rs := replicas(t, 2)
	at := t0.Add(time.Hour)
	rs[0].publish(t, "shop/web", at, "app", "web.1", "same µs a")
	rs[1].publish(t, "shop/web", at, "app", "web.2", "same µs b")
	open := func(lastID string) (<-chan sseEvent, func()) {
		req, _ := http.NewRequest(http.MethodGet, rs[0].srv.URL+Path+sessionID(t, session.Claims{Namespace: "shop", App: "web", Lines: 10})+"?format=sse", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readEvents(resp.Body), func() { _ = resp.Body.Close() }
	}
	lines := func(evs <-chan sseEvent) (msgs []string, lastID string) {
		for {
			ev := nextEvent(t, evs)
			switch ev.event {
			case "line":
				var l jsonLine
				if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(l.Message, "same µs") {
					msgs, lastID = append(msgs, l.Message), ev.id
				}
			case "end":
				return msgs, lastID
			}
		}
	}
	evs, done := open("")
	first, id := lines(evs)
	done()
	if len(first) != 2 {
		t.Fatalf("first stream: %q", first)
	}
	// Meanwhile: one more line in that microsecond, one after it.
	rs[1].publish(t, "shop/web", at, "app", "web.3", "same µs c")
	rs[0].publish(t, "shop/web", at.Add(time.Microsecond), "app", "web.1", "same µs d")
	// The id as routers wrote it before they numbered lines (time and hashes only)
	// resumes by time, as it did; the full id by position.
	oldForm, _, _ := strings.Cut(id, ",")
	if oldForm == id {
		t.Fatalf("id %q has no positions", id)
	}
	for _, last := range []string{oldForm, id} {
		evs, done = open(last)
		if again, _ := lines(evs); strings.Join(again, ",") != "same µs c,same µs d" {
			t.Fatalf("after reconnecting with Last-Event-ID %s: %q, want c then d (a and b were sent)", last, again)
		}
		done()
	}
}

// TestEventStreamResumesLateLines, with 2 and 3 replicas: a line that reaches a
// replica while the viewer is away, with a time older than the newest line the
// viewer got (a producer's clock behind, a slow replica), is sent once after the
// reconnect, whether the viewer resumes with Last-Event-ID or with the re-issued URL
// and ?cursor=; no line is sent twice. Resuming by time alone would skip it.
func TestEventStreamResumesLateLines(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n, " replicas"), func(t *testing.T) {
			rs := replicas(t, n)
			at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
			for i := range 3 * n {
				rs[i%n].publish(t, "shop/web", at.Add(time.Duration(i)*time.Millisecond), "app", "web.1", fmt.Sprint("history ", i))
			}
			claims := session.Claims{Namespace: "shop", App: "web", Lines: 100, Tail: true}
			type stream struct {
				evs  <-chan sseEvent
				url  string // the re-issued URL of the session event
				done func()
			}
			open := func(url, lastID string) stream {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Accept", "text/event-stream")
				if lastID != "" {
					req.Header.Set("Last-Event-ID", lastID)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %d", url, resp.StatusCode)
				}
				st := stream{evs: readEvents(resp.Body), done: func() { _ = resp.Body.Close() }}
				ev := nextEvent(t, st.evs)
				var d struct{ URL string }
				if ev.event != "session" || json.Unmarshal([]byte(ev.data), &d) != nil {
					t.Fatalf("first event %+v", ev)
				}
				st.url = d.URL
				return st
			}
			// upTo reads line events until the one with text marker and returns the
			// texts before it and the marker's id.
			upTo := func(st stream, marker string) (texts []string, id string) {
				t.Helper()
				for {
					ev := nextEvent(t, st.evs)
					if ev.event != "line" {
						continue
					}
					var l jsonLine
					if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
						t.Fatal(err)
					}
					if l.Message == marker {
						return texts, ev.id
					}
					texts = append(texts, l.Message)
				}
			}
			mark := 0
			marker := func() string { // a current line through the last replica
				mark++
				text := fmt.Sprint("marker ", mark)
				rs[n-1].publish(t, "shop/web", time.Now(), "app", "web.1", text)
				return text
			}

			st := open(rs[0].srv.URL+Path+sessionID(t, claims), "")
			if got, _ := upTo(st, marker()); len(got) != 3*n {
				t.Fatalf("history: %q", got)
			}
			// A late line while connected comes by the tail.
			rs[1].publish(t, "shop/web", at.Add(-time.Hour), "app", "web.1", "late while connected")
			got, id := upTo(st, marker())
			if strings.Join(got, ",") != "late while connected" {
				t.Fatalf("tail: %q", got)
			}
			reissued := st.url
			st.done()

			// Away: late lines (older than everything sent) on every replica but
			// the last, and a current one.
			var want []string
			for i, r := range rs[:n-1] {
				text := fmt.Sprint("late while away ", i)
				r.publish(t, "shop/web", at.Add(-30*time.Minute), "app", "web.2", text)
				want = append(want, text)
			}
			rs[0].publish(t, "shop/web", time.Now(), "app", "web.1", "current while away")
			want = append(want, "current while away")

			// Back with Last-Event-ID, on another replica than before.
			st = open(rs[n-1].srv.URL+Path+sessionID(t, claims), id)
			got, id2 := upTo(st, marker())
			st.done()
			slices.Sort(got)
			slices.Sort(want)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("after reconnecting with Last-Event-ID %s: %q, want %q once each", id, got, want)
			}
			// Away again: a late line; back with the URL of the first stream's
			// session event and the newest id as ?cursor=.
			rs[0].publish(t, "shop/web", at.Add(-20*time.Minute), "app", "web.3", "late while away again")
			u, err := url.Parse(reissued)
			if err != nil {
				t.Fatal(err)
			}
			u.RawQuery = url.Values{"format": {"sse"}, "cursor": {id2}}.Encode()
			st = open(u.String(), "")
			defer st.done()
			if got, _ := upTo(st, marker()); strings.Join(got, ",") != "late while away again" {
				t.Fatalf("after reconnecting with ?cursor=%s: %q", id2, got)
			}
		})
	}
}

// TestEventStreamTailEventHoldsEveryReplica: a tail that asked for no history and
// got no line yet still has an exact cursor, from its "tail" event: each replica's
// newest line when the tail began. Late lines that reach any replica while the
// reader is away come after a reconnect with it, once, and no history before it
// (which the reader did not ask for) comes at all.
func TestEventStreamTailEventHoldsEveryReplica(t *testing.T) {
	rs := replicas(t, 2)
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 4 {
		rs[i%2].publish(t, "shop/web", at.Add(time.Duration(i)*time.Millisecond), "app", "web.1", fmt.Sprint("history ", i))
	}
	open := func(lines int, lastID string) (<-chan sseEvent, func()) {
		t.Helper()
		claims := session.Claims{Namespace: "shop", App: "web", Lines: lines, Tail: true}
		req, _ := http.NewRequest(http.MethodGet, rs[0].srv.URL+Path+sessionID(t, claims)+"?format=sse", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return readEvents(resp.Body), func() { _ = resp.Body.Close() }
	}
	evs, done := open(0, "")
	if ev := nextEvent(t, evs); ev.event != "session" {
		t.Fatalf("first event %+v", ev)
	}
	ev := nextEvent(t, evs)
	done()
	c, ok := parseCursor(ev.id)
	if ev.event != "tail" || !ok || len(c.pos) != 2 {
		t.Fatalf("after an empty history: %+v, want a tail event with both replicas' positions", ev)
	}
	for i, r := range rs {
		a, _ := r.d.App("shop/web")
		if seq, ok := c.after(a.History.ID()); !ok || seq != 2 {
			t.Errorf("replica %d: position %d (%v), want 2", i, seq, ok)
		}
	}
	// Away: a late line on each replica (older than the history), then a marker.
	rs[1].publish(t, "shop/web", at.Add(-time.Hour), "app", "web.2", "late 1")
	rs[0].publish(t, "shop/web", at.Add(-time.Hour), "app", "web.2", "late 0")
	rs[1].publish(t, "shop/web", time.Now(), "app", "web.1", "marker")
	evs, done = open(100, ev.id)
	defer done()
	var got []string
	for {
		ev := nextEvent(t, evs)
		if ev.event != "line" {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
			t.Fatal(err)
		}
		if l.Message == "marker" {
			break
		}
		got = append(got, l.Message)
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "late 0,late 1" {
		t.Fatalf("after reconnecting with the tail event's id %s: %q, want the two late lines once each", ev.id, got)
	}
}

// TestReissueWithAnOldPeerHasNoPositions: during a rolling upgrade a replica that
// answers a peer call the old way (plain frames, no history ID) is a router that
// would refuse a session id carrying positions, so re-issued URLs carry none while
// such a replica takes part; they still resume by time.
func TestReissueWithAnOldPeerHasNoPositions(t *testing.T) {
	rs := replicas(t, 1)
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PeerPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", peerMediaType)
		out := appendFrame(nil, frameHistory, message.AppendStrings(nil, 190, t0, "app", "web.2", "from the old router"))
		_, _ = w.Write(appendFrame(out, frameEndHistory, nil))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a tail: open until the caller leaves
	}))
	t.Cleanup(old.Close)
	rs[0].h.peers.(*peerList).urls = []string{old.URL}
	rs[0].h.opts.ReissueEvery = 50 * time.Millisecond
	rs[0].publish(t, "shop/web", t0.Add(time.Millisecond), "app", "web.1", "from the new router")
	claims := session.Claims{Namespace: "shop", App: "web", Lines: 10, Tail: true}
	resp, err := http.Get(rs[0].srv.URL + Path + sessionID(t, claims) + "?format=sse")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() }) // before the servers' Close
	evs := readEvents(resp.Body)
	var lines []string
	for {
		ev := nextEvent(t, evs)
		switch ev.event {
		case "line":
			var l jsonLine
			if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l.Message)
			continue
		case "session":
			if len(lines) < 2 {
				continue // the one at connect, before any line
			}
		default:
			continue
		}
		var d struct{ URL string }
		if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
			t.Fatal(err)
		}
		c, err := session.Verify(d.URL[strings.LastIndex(d.URL, "/")+1:], testKeys, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Pos) != 0 || c.Since != t0.Add(time.Millisecond).UnixMicro() {
			t.Fatalf("re-issued after %q with an old peer: pos %v since %d, want no positions and the newest time", lines, c.Pos, c.Since)
		}
		return
	}
}
