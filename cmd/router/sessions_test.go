package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	peer "github.com/kubeplex/kubeplex/router/drainpeer"
)

const (
	shopToken  = "t.aaaaaaaa-1111-4111-8111-111111111111"
	otherToken = "t.bbbbbbbb-2222-4222-8222-222222222222"
	shopDrain  = "d.cccccccc-3333-4333-8333-333333333333"
)

var sessionKeys = []routing.SessionKey{{ID: "k1", Key: strings.Repeat("5a", 32), Created: time.Now().UTC().Truncate(time.Second)}}

// startRouters runs n router processes that know each other through --peers, all
// with the table tbl, and returns their base URLs. "{self}" in an extra argument
// becomes the router's own base URL.
func startRouters(t *testing.T, n int, tbl routing.Table, extra ...string) []string {
	t.Helper()
	bases, _ := startRoutersProcs(t, n, tbl, extra...)
	return bases
}

func startRoutersProcs(t *testing.T, n int, tbl routing.Table, extra ...string) ([]string, []*testenv.Process) {
	t.Helper()
	rs := startRouterSet(t, n, tbl, extra...)
	bases := make([]string, 0, n)
	procs := make([]*testenv.Process, 0, n)
	for _, r := range rs {
		bases, procs = append(bases, r.base), append(procs, r.proc)
	}
	return bases, procs
}

// routerProc is one router of startRouterSet: its base URL, admin address, process.
type routerProc struct {
	base, admin string
	proc        *testenv.Process
}

func startRouterSet(t *testing.T, n int, tbl routing.Table, extra ...string) []routerProc {
	t.Helper()
	routes := writeTable(t, tbl)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = testenv.FreeAddr(t)
	}
	rs := make([]routerProc, 0, n)
	for i, addr := range addrs {
		var others []string
		for j, a := range addrs {
			if j != i {
				others = append(others, "http://"+a)
			}
		}
		admin := testenv.FreeAddr(t)
		args := make([]string, 0, 12+len(extra))
		args = append(args, "--http-addr", addr, "--admin-addr", admin, "--routes", routes, "--allow-cidrs", "127.0.0.0/8",
			"--name", fmt.Sprint("router-", i), "--peers", strings.Join(others, ","))
		for _, a := range extra {
			args = append(args, strings.ReplaceAll(a, "{self}", "http://"+addr)) // {self}: this router's base URL
		}
		rs = append(rs, routerProc{base: "http://" + addr, admin: admin, proc: testenv.Start(t, routerBin, nil, args...)})
	}
	for _, r := range rs {
		testenv.WaitHTTP(t, r.base+"/readyz")
	}
	return rs
}

func sessionTable() routing.Table {
	return routing.Table{SessionKeys: sessionKeys, Apps: []routing.App{
		{ID: "shop/web", Tokens: []routing.Token{{Token: shopToken, Source: "app", AllowedSources: []string{"kubeplex"}}}},
		{ID: "other/web", Tokens: []routing.Token{{Token: otherToken, Source: "app"}}},
	}}
}

func sign(t *testing.T, c session.Claims, ttl time.Duration) string {
	t.Helper()
	id, err := session.Sign(c, sessionKeys, time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// sendLines POSTs one line per text to base, each with its own timestamp.
func sendLines(t *testing.T, base, token string, lines ...[3]string) {
	t.Helper()
	recs := make([]string, 0, len(lines))
	for _, l := range lines { // time, proc, text
		recs = append(recs, fmt.Sprintf("<190>1 %s host app %s - - %s", l[0], l[1], l[2]))
	}
	resp, _ := post(t, base+"/logs", token, frames(recs...), map[string]string{wire.HeaderMsgCount: fmt.Sprint(len(recs))})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /logs = %d", resp.StatusCode)
	}
}

func stamp(i int) string {
	return time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000000+00:00")
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestSessionsAcrossRouterProcesses: with 2 and with 3 router processes, lines sent
// to each replica come back from a session on any replica merged in timestamp order,
// the newest `lines`, filtered, and never another namespace's lines; a tail session
// then gets new lines sent to every replica.
func TestSessionsAcrossRouterProcesses(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n, " routers"), func(t *testing.T) {
			bases := startRouters(t, n, sessionTable())
			const total = 60
			// Round-robin in time across replicas, each replica's batch in one POST.
			for r, b := range bases {
				var ls [][3]string
				for i := r; i < total; i += n {
					ls = append(ls, [3]string{stamp(i), fmt.Sprintf("web.%d", i%2+1), fmt.Sprint("line ", i)})
				}
				sendLines(t, b, shopToken, ls...)
				sendLines(t, b, otherToken, [3]string{stamp(1000), "web.1", "line of other"})
			}
			for _, b := range bases {
				code, body := getBody(t, b+"/sessions/"+sign(t, session.Claims{Namespace: "shop", App: "web", Lines: 50}, time.Minute))
				lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
				if code != http.StatusOK || len(lines) != 50 {
					t.Fatalf("%s: %d, %d lines:\n%s", b, code, len(lines), body)
				}
				for k, l := range lines {
					i := total - 50 + k
					if want := fmt.Sprintf("%s app[web.%d]: line %d", stamp(i), i%2+1, i); l != want {
						t.Fatalf("%s line %d = %q, want %q", b, k, l, want)
					}
				}
				if strings.Contains(body, "other") {
					t.Fatal("a shop session shows a line of namespace other")
				}
			}
			// Filter on a process across replicas: exactly the web.2 lines (odd i).
			_, body := getBody(t, bases[n-1]+"/sessions/"+sign(t, session.Claims{Namespace: "shop", App: "web", Lines: 1500, Dyno: "web.2"}, time.Minute)+"?format=json")
			if got := strings.Count(body, `"dyno":"web.2"`); got != total/2 || strings.Contains(body, `"dyno":"web.1"`) {
				t.Fatalf("dyno filter: %d web.2 lines of %d:\n%s", got, total/2, body)
			}
			// The other namespace's session sees only its own.
			_, body = getBody(t, bases[0]+"/sessions/"+sign(t, session.Claims{Namespace: "other", App: "web", Lines: 1500}, time.Minute))
			if strings.Count(body, "\n") != n || strings.Contains(body, "line 1\n") {
				t.Fatalf("other's session:\n%s", body)
			}

			// Tail from every replica, opened on the last one.
			id := sign(t, session.Claims{Namespace: "shop", App: "web", Lines: 1, Tail: true, Source: "app"}, time.Minute)
			resp, err := http.Get(bases[n-1] + "/sessions/" + id)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			if l := <-lines; !strings.HasSuffix(l, fmt.Sprint("line ", total-1)) {
				t.Fatalf("history line %q", l)
			}
			// History came after every peer had subscribed its tail: one line per
			// replica now must arrive, and nothing of namespace other.
			for r, b := range bases {
				sendLines(t, b, otherToken, [3]string{stamp(2000), "web.1", "tail of other"})
				sendLines(t, b, shopToken, [3]string{stamp(2000 + r), "web.1", fmt.Sprint("tail from ", r)})
			}
			seen := map[string]bool{}
			for len(seen) < n {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatal("tail ended")
					}
					_, from, found := strings.Cut(l, "tail from ")
					if !found || seen[from] || strings.Contains(l, "other") {
						t.Fatalf("unexpected tail line %q", l)
					}
					seen[from] = true
				case <-time.After(testenv.WaitTimeout):
					t.Fatalf("tail got %v of %d replicas", seen, n)
				}
			}
			lateLinesResume(t, bases)
		})
	}
}

// lateLinesResume: an event stream that reconnects (Last-Event-ID, on another
// replica) gets, once each, the lines that reached the replicas while it was away,
// those whose time is older than the newest line it had got included (a producer's
// clock behind); nothing it had already got comes again.
func lateLinesResume(t *testing.T, bases []string) {
	t.Helper()
	n := len(bases)
	claims := session.Claims{Namespace: "shop", App: "web", Lines: 100, Tail: true}
	open := func(base, lastID string) (*bufio.Scanner, func()) {
		req, _ := http.NewRequest(http.MethodGet, base+"/sessions/"+sign(t, claims, time.Minute)+"?format=sse", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("open event stream on %s: %v %v", base, resp, err)
		}
		return bufio.NewScanner(resp.Body), func() { _ = resp.Body.Close() }
	}
	// upTo reads "line" events up to the one with text marker: the texts before it
	// and the marker's id. The caller's marker line is sent after the others, so
	// waiting for it is waiting for them.
	upTo := func(sc *bufio.Scanner, done func(), marker string) (texts []string, id string) {
		t.Helper()
		deadline := time.AfterFunc(testenv.WaitTimeout, done) // ends the Scan below
		defer deadline.Stop()
		for sc.Scan() {
			l := sc.Text()
			if v, ok := strings.CutPrefix(l, "id: "); ok {
				id = v
			}
			data, ok := strings.CutPrefix(l, "data: ")
			if !ok || !strings.Contains(data, `"message"`) {
				continue
			}
			var line struct{ Message string }
			if err := json.Unmarshal([]byte(data), &line); err != nil {
				t.Fatal(err)
			}
			if line.Message == marker {
				return texts, id
			}
			texts = append(texts, line.Message)
		}
		t.Fatalf("event stream ended before %q (got %q)", marker, texts)
		return nil, ""
	}
	sc, done := open(bases[0], "")
	sendLines(t, bases[n-1], shopToken, [3]string{stamp(3000), "web.1", "marker 1"})
	_, id := upTo(sc, done, "marker 1")
	done()
	want := make([]string, 0, n)
	for r, b := range bases[:n-1] {
		text := fmt.Sprint("late from ", r)
		sendLines(t, b, shopToken, [3]string{stamp(2500 + r), "web.1", text}) // older than marker 1
		want = append(want, text)
	}
	sendLines(t, bases[0], shopToken, [3]string{stamp(3001), "web.1", "current"})
	want = append(want, "current")
	sc, done = open(bases[n-1], id)
	defer done()
	sendLines(t, bases[n-1], shopToken, [3]string{stamp(4000), "web.1", "marker 2"})
	got, _ := upTo(sc, done, "marker 2")
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after reconnecting with Last-Event-ID %s: %q, want %q once each", id, got, want)
	}
}

// rawGet sends path as it is (Go's client would clean some paths first).
func rawGet(t *testing.T, base, path string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
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
	return resp.StatusCode, string(b)
}

// TestSessionURLsRefused: expired (with no client ever connecting), forged,
// truncated and path-trick URLs are refused by the process, with a one-line reason
// and no line of the app; the router's own output never shows a session id.
func TestSessionURLsRefused(t *testing.T) {
	bases, procs := startRoutersProcs(t, 1, sessionTable(), "--log-level", "debug")
	proc := procs[0]
	sendLines(t, bases[0], shopToken, [3]string{stamp(1), "web.1", "private line"})
	short := sign(t, session.Claims{Namespace: "shop", App: "web", Lines: 10}, time.Second)
	good := sign(t, session.Claims{Namespace: "shop", App: "web", Lines: 10}, time.Minute)
	forged, err := session.Sign(session.Claims{Namespace: "shop", App: "web", Lines: 10},
		[]routing.SessionKey{{ID: "k1", Key: strings.Repeat("77", 32)}}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Expiry with no client: the URL works only until its deadline.
	testenv.Eventually(t, "short session expired", func() error {
		if code, _ := rawGet(t, bases[0], "/sessions/"+short); code != http.StatusForbidden {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	p, s, _ := strings.Cut(good, ".")
	for name, path := range map[string]string{
		"replayed after expiry": "/sessions/" + short,
		"forged":                "/sessions/" + forged,
		"truncated":             "/sessions/" + good[:len(good)-2],
		"payload cut":           "/sessions/" + p[:len(p)/2] + "." + s,
		"dot dot":               "/sessions/../status",
		"encoded dot dot":       "/sessions/%2e%2e/status",
		"double encoded":        "/sessions/%252e%252e%252fstatus",
		"over-long":             "/sessions/" + strings.Repeat("A", 4096),
	} {
		code, body := rawGet(t, bases[0], path)
		if code < 400 || code >= 500 || strings.Contains(body, "private") || strings.Count(body, "\n") != 1 {
			t.Errorf("%s: %d %q", name, code, body)
		}
	}
	if code, body := getBody(t, bases[0]+"/sessions/"+good); code != http.StatusOK || !strings.Contains(body, "private line") {
		t.Fatalf("good URL: %d %q", code, body)
	}
	// A browser gets the viewer page, which holds no line itself.
	req, _ := http.NewRequest(http.MethodGet, bases[0]+"/sessions/"+good, nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // read to the end
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || strings.Contains(string(page), "private line") {
		t.Fatalf("viewer page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The router's output never carries a session id.
	if out := proc.Out.String(); strings.Contains(out, good[:20]) || strings.Contains(out, short[:20]) {
		t.Fatal("a session id appears in the router's output")
	}
}

// TestSlowSessionReaderLosesOnlyItsOwnLines: a tail session whose client never
// reads gets an L11 notice when it reads again, while a drain of the same app
// receives every line: the router never waits for a session.
func TestSlowSessionReaderLosesOnlyItsOwnLines(t *testing.T) {
	sink := peer.NewSyslogSink(t, nil)
	tbl := sessionTable()
	tbl.Apps[0].Drains = []routing.Drain{{ID: "shop/archive", Token: shopDrain, URL: "syslog://" + sink.Addr}}
	bases := startRouters(t, 1, tbl, "--session-buffer", "100", "--queue-size", "100000")

	// A client with a tiny receive window that reads the headers and then nothing.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(bases[0], "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // test connection
	id := sign(t, session.Claims{Namespace: "shop", App: "web", Tail: true}, time.Minute)
	if _, err := fmt.Fprintf(conn, "GET /sessions/%s HTTP/1.1\r\nHost: x\r\n\r\n", id); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("session: %v %v", resp, err)
	}

	const batches, perBatch = 40, 500
	text := strings.Repeat("x", 900)
	for b := range batches {
		ls := make([][3]string, 0, perBatch)
		for i := range perBatch {
			ls = append(ls, [3]string{time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"), "web.1", fmt.Sprintf("n=%d %s", b*perBatch+i, text)})
		}
		sendLines(t, bases[0], shopToken, ls...)
	}
	got := sink.WaitFor(t, batches*perBatch)
	announced, other := peer.L10Count(got)
	if announced != 0 || other != batches*perBatch {
		t.Fatalf("drain: %d lines and %d announced drops, want %d and 0", other, announced, batches*perBatch)
	}
	// The reader reads again: somewhere in what it gets is the L11 notice.
	done := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, "Error L11") {
				done <- l
				return
			}
		}
		done <- ""
	}()
	select {
	case l := <-done:
		var n int
		var rest string
		if _, err := fmt.Sscanf(l[strings.Index(l, "Error L11"):], "Error L11 (Tail buffer overflow) -> This tail session dropped %d messages since %s", &n, &rest); err != nil ||
			!strings.Contains(l, " kubeplex[router]: ") || n <= 0 || n >= batches*perBatch {
			t.Fatalf("L11 line %q (%v)", l, err)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no L11 notice")
	}
}
