package collector_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/internal/fakerouter"
	"github.com/kubeplex/kubeplex/collector/internal/secretvol"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

const (
	tokenA   = "t.1a2b3c4d-0000-4a00-8a00-00000000000a"
	tokenB   = "t.1a2b3c4d-0000-4b00-8b00-00000000000b"
	envToken = "t.1a2b3c4d-0000-4e00-8e00-00000000000e" // never accepted: the file must win
)

// tokenRig is a sidecar reading its token from a Secret-volume-like directory, fed
// through POST /trace so the test decides exactly what was sent and when.
type tokenRig struct {
	t    *testing.T
	r    *fakerouter.Router
	sc   *sidecar
	dir  string
	sent int
}

func startTokenRig(t *testing.T, refresh string) *tokenRig {
	t.Helper()
	rig := &tokenRig{t: t, r: fakerouter.Start(t, tokenA), dir: filepath.Join(t.TempDir(), "token")}
	rig.writeToken(tokenA)
	rig.sc = startSidecar(t, []string{"KUBEPLEX_ROUTER_URL=" + rig.r.URL(),
		"KUBEPLEX_TOKEN_FILE=" + filepath.Join(rig.dir, "token"), "KUBEPLEX_TOKEN=" + envToken,
		"KUBEPLEX_TOKEN_REFRESH=" + refresh, "KUBEPLEX_PROCESS=web.1", "KUBEPLEX_BACKOFF_MAX=500ms",
		"KUBEPLEX_LOG_LEVEL=debug", "KUBEPLEX_TRACE_SYSLOG_ADDR=", "KUBEPLEX_TRACE_HTTP_ADDR=127.0.0.1:0"})
	return rig
}

// writeToken updates the token as the kubelet updates a Secret volume.
func (rig *tokenRig) writeToken(tok string) {
	rig.t.Helper()
	if err := secretvol.Write(rig.dir, map[string]string{"token": tok}); err != nil {
		rig.t.Fatal(err)
	}
}

// send posts n numbered lines to the sidecar's trace endpoint.
func (rig *tokenRig) send(n int) {
	rig.t.Helper()
	var b strings.Builder
	for range n {
		fmt.Fprintf(&b, "line %d\n", rig.sent)
		rig.sent++
	}
	resp, err := http.Post("http://"+rig.sc.http+"/trace", "text/plain", strings.NewReader(b.String()))
	if err != nil {
		rig.t.Fatal(err)
	}
	_ = resp.Body.Close() // the status is the answer; the body is empty
	if resp.StatusCode != http.StatusNoContent {
		rig.t.Fatalf("POST /trace: %s", resp.Status)
	}
}

// settled waits until every line sent is delivered or counted lost (L13).
func (rig *tokenRig) settled() {
	rig.t.Helper()
	rig.r.WaitFor(60*time.Second, fmt.Sprintf("%d lines delivered or counted", rig.sent), func(recs []fakerouter.Record) bool {
		_, lost := fakerouter.Loss(recs)
		return len(appTexts(recs, "web.1", 0))+lost >= rig.sent
	})
}

func (rig *tokenRig) waitRefused(n int) {
	rig.t.Helper()
	testenv.Until(rig.t, fmt.Sprintf("router refused %d batches", n), func() bool {
		_, refused := rig.r.Auth()
		return refused >= n
	})
}

// TestTokenFileRotation: the sidecar reads its token from a file laid out like a
// Secret volume (a ..data symlink swapped to a new timestamped directory on update)
// and follows a rotation without a restart.
func TestTokenFileRotation(t *testing.T) {
	tests := []struct {
		name    string
		refresh string // KUBEPLEX_TOKEN_REFRESH
		rotate  func(rig *tokenRig)
		// want401: the rotation must have gone through the 401 path; wantLost: lines
		// counted lost (L13), at least.
		want401  bool
		wantLost int
	}{{
		// The router stops taking the old token as the file changes (grace period
		// over): the first batch is refused, the file re-read, the batch sent again.
		name: "refused token is re-read from the file", refresh: "1h", want401: true,
		rotate: func(rig *tokenRig) {
			rig.writeToken(tokenB)
			rig.r.SetTokens(tokenB)
			rig.send(100)
			rig.settled()
		},
	}, {
		// Within the grace period both tokens work; the periodic check moves the
		// collector to the new one before the old one is refused, so no 401 at all.
		name: "periodic check picks the new token up within the grace period", refresh: "100ms",
		rotate: func(rig *tokenRig) {
			rig.r.SetTokens(tokenA, tokenB)
			rig.writeToken(tokenB)
			for i := 0; ; i++ {
				if used, _ := rig.r.Auth(); used[tokenB] > 0 {
					break
				}
				if i == 100 {
					rig.t.Fatal("the collector never sent the new token")
				}
				rig.send(5)
				rig.settled()
			}
			rig.r.SetTokens(tokenB)
			rig.send(100)
			rig.settled()
		},
	}, {
		// The old token is refused before the kubelet has updated the file: those
		// batches are lost and counted, as for any refusal; once the file changes the
		// next batch carries the L13 notice.
		name: "refused before the file changes: lost and counted", refresh: "1h", want401: true, wantLost: 10,
		rotate: func(rig *tokenRig) {
			rig.r.SetTokens(tokenB)
			rig.send(10)
			rig.waitRefused(1)
			// The second refusal comes after the first batch's re-read, which
			// therefore saw the old file: at least those 10 lines are lost.
			rig.send(10)
			rig.waitRefused(2)
			rig.writeToken(tokenB)
			rig.send(100)
			rig.settled()
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rig := startTokenRig(t, tt.refresh)
			rig.send(100)
			rig.settled()
			tt.rotate(rig)
			rig.sc.stop(t)

			recs := rig.r.Records()
			got := appTexts(recs, "web.1", 0)
			dropped, lost := fakerouter.Loss(recs)
			if dropped != 0 || len(got)+lost != rig.sent || lost < tt.wantLost || (tt.wantLost == 0 && lost != 0) {
				t.Errorf("sent %d: delivered %d, lost %d (want ≥ %d), dropped %d", rig.sent, len(got), lost, tt.wantLost, dropped)
			}
			if prev := lastLine(t, got); prev != rig.sent-1 {
				t.Errorf("last line delivered %d, want %d", prev, rig.sent-1)
			}
			used, refused := rig.r.Auth()
			if used[tokenA] == 0 || used[tokenB] == 0 || used[envToken] != 0 {
				t.Errorf("batches accepted per token: A %d, B %d, env %d", used[tokenA], used[tokenB], used[envToken])
			}
			if tt.want401 != (refused > 0) {
				t.Errorf("%d batches refused with 401; want some: %v", refused, tt.want401)
			}
			for _, tok := range []string{tokenA, tokenB, envToken} {
				if strings.Contains(rig.sc.stderr.String(), tok) {
					t.Errorf("the collector's log contains a token")
				}
			}
		})
	}
}

// TestTokenFileMissing: a token file that cannot be read stops the sidecar at once
// with the path in the message, rather than shipping batches bound to be refused.
func TestTokenFileMissing(t *testing.T) {
	r := fakerouter.Start(t, tokenA)
	path := filepath.Join(t.TempDir(), "absent", "token")
	p := start(t, []string{"KUBEPLEX_ROUTER_URL=" + r.URL(), "KUBEPLEX_TOKEN_FILE=" + path,
		"KUBEPLEX_TOKEN=" + envToken, "KUBEPLEX_TRACE_SYSLOG_ADDR=", "KUBEPLEX_TRACE_HTTP_ADDR="}, "sidecar")
	st := p.wait(t, 30*time.Second)
	if st.ExitCode() == 0 || !strings.Contains(p.stderr.String(), path) || strings.Contains(p.stderr.String(), envToken) {
		t.Errorf("exit %d, stderr %q; want a failure naming the token file", st.ExitCode(), p.stderr.String())
	}
}

// TestTokenNotYetKnown: a new app's token reaches the routers a moment after its
// Secret exists, so the first batches of a fresh pod may be refused with 401. They are
// retried with backoff, not given up: once the router knows the token, every line
// arrives and nothing is counted lost.
func TestTokenNotYetKnown(t *testing.T) {
	rig := startTokenRig(t, "1h")
	rig.r.SetTokens() // the router has not loaded the table with this app yet
	rig.send(10)
	rig.waitRefused(2) // the same batch, refused and retried
	rig.r.SetTokens(tokenA)
	rig.send(10)
	rig.settled()
	rig.sc.stop(t)

	recs := rig.r.Records()
	dropped, lost := fakerouter.Loss(recs)
	if got := appTexts(recs, "web.1", 0); len(got) != rig.sent || lost != 0 || dropped != 0 {
		t.Fatalf("sent %d: delivered %d, lost %d, dropped %d; want all delivered", rig.sent, len(got), lost, dropped)
	}
}
