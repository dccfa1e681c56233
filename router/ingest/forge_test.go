package ingest_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/ingest"
)

// Real access-log lines, as ingress-nginx's nginx writes them with the ConfigMap
// snippet of docs/sources.md: its default upstream format with host=$host appended,
// plain nginx combined with the same, and the JSON format.
const (
	nginxDefault  = `192.168.49.1 - - [25/Nov/2026:10:00:00 +0000] "GET /cart?id=7 HTTP/1.1" 200 612 "-" "curl/8.5.0" 83 0.012 [shop-web-80] [] 10.244.0.12:8080 612 0.011 200 5f7c9b2e1d4a8c3b6e0f1a2b3c4d5e6f host=shop.example.com`
	nginxCombined = `203.0.113.7 - alice [25/Nov/2026:10:00:01 +0000] "POST /login HTTP/2.0" 302 0 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64)" host=shop.example.com`
	nginxJSON     = `{"time":"2026-11-25T10:00:02+00:00","remote_addr":"10.0.0.9","x_forwarded_for":"198.51.100.4","request_id":"0a1b2c3d","host":"shop.example.com","method":"GET","path":"/api/items","protocol":"HTTP/1.1","status":404,"bytes_sent":153,"request_time":0.004,"upstream_response_time":"0.003"}`
	unknownHost   = `192.168.49.1 - - [25/Nov/2026:10:00:03 +0000] "GET / HTTP/1.1" 200 1 "-" "curl/8.5.0" host=elsewhere.example.com`

	wantDefault  = `kubeplex[router] at=info method=GET path="/cart?id=7" host=shop.example.com request_id=5f7c9b2e1d4a8c3b6e0f1a2b3c4d5e6f fwd="192.168.49.1" service=11ms status=200 bytes=612 protocol=http`
	wantCombined = `kubeplex[router] at=info method=POST path="/login" host=shop.example.com fwd="203.0.113.7" status=302 bytes=0 protocol=http`
	wantJSON     = `kubeplex[router] at=info method=GET path="/api/items" host=shop.example.com request_id=0a1b2c3d fwd="198.51.100.4" service=3ms status=404 bytes=153 protocol=http`
)

func counter(t *testing.T, e *env, proto, reason string) float64 {
	t.Helper()
	var pb dto.Metric
	if err := e.m.IngestErrors.WithLabelValues(proto, reason).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetCounter().GetValue()
}

// TestLoadBalancerLines: access logs over syslog (TCP and UDP) are filed by the host
// they name, in Heroku's router form, as kubeplex[router]; an unknown host is counted
// and dropped.
func TestLoadBalancerLines(t *testing.T) {
	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			e := setup(t, ingest.Limits{})
			tcp, _, udp, _ := startSyslog(t, e, time.Minute)
			addr := map[string]string{"tcp": tcp, "udp": udp}[proto]
			c, err := net.Dial(proto, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Close() }() // the subtest is over
			for _, line := range []string{nginxDefault, unknownHost, nginxCombined, nginxJSON} {
				// RFC 3164, as nginx's access_log syslog: writes it.
				if _, err := c.Write([]byte("<190>Nov 25 10:00:00 ingress-nginx-controller-5c8d nginx: " + line + "\n")); err != nil {
					t.Fatal(err)
				}
			}
			got := e.waitLines(t, "shop/web", 3)
			want := []string{wantDefault, wantCombined, wantJSON}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			testenv.Eventually(t, "unknown host counted", func() error {
				if n := counter(t, e, proto, "unknown_host"); n != 1 {
					return errf("unknown_host = %v, want 1", n)
				}
				return nil
			})
		})
	}
}

// TestForgedPlatformLinesRefused tries every way a token holder, a pod or anyone who
// reaches the syslog port could write a line that looks like kubeplex's own, and
// checks that each is filed as what it is (app) or dropped, never as kubeplex.
func TestForgedPlatformLinesRefused(t *testing.T) {
	const l10 = "Error L10 (output buffer overflow): 999 messages dropped since 2026-11-25T10:00:00+00:00."
	httpCases := []struct {
		name  string
		token string
		hdr   map[string]string
		rec   string
		app   string
		want  string // the line as filed; "" = refused (non-2xx)
	}{
		{"app token as kubeplex[router]", tokWeb, nil, "<190>1 2026-11-25T10:00:00Z h kubeplex router - - " + l10, "shop/web", "app[router] " + l10},
		{"app token as kubeplex[web.1] process event", tokWeb, nil, "<190>1 2026-11-25T10:00:00Z h kubeplex web.1 - - Process exited with status 0", "shop/web", "app[web.1] Process exited with status 0"},
		{"app token as kubeplex[api]", tokAPI, nil, "<190>1 2026-11-25T10:00:00Z h kubeplex api - - LogDrain deleted", "shop/api", "app[api] LogDrain deleted"},
		{"collector credential as kubeplex[router]", tokWebCollector, nil, "<190>1 2026-11-25T10:00:00Z h kubeplex router - - " + l10, "shop/web", "app[router] " + l10},
		{"collector credential as kubeplex[deploy]", tokWebCollector, nil, "<190>1 2026-11-25T10:00:00Z h kubeplex deploy - - Rollout complete", "shop/web", "app[deploy] Rollout complete"},
		{"app token naming another app like the platform does", tokAPI, map[string]string{"Kubeplex-App": "shop/web"}, "<190>1 2026-11-25T10:00:00Z h kubeplex router - - " + l10, "shop/api", "app[router] " + l10},
		{"unknown token naming an app", "p.00000000-0000-4000-8000-000000000000", map[string]string{"Kubeplex-App": "shop/web"}, "<190>1 2026-11-25T10:00:00Z h kubeplex router - - " + l10, "shop/web", ""},
		{"the real platform credential, for contrast", tokPlatform, map[string]string{"Kubeplex-App": "shop/web"}, "<190>1 2026-11-25T10:00:00Z manager kubeplex router - - drain d.x added", "shop/web", "kubeplex[router] drain d.x added"},
		{"platform credential without an app", tokPlatform, nil, "<190>1 2026-11-25T10:00:00Z manager kubeplex router - - nowhere", "shop/web", ""},
	}
	for _, tt := range httpCases {
		t.Run("http/"+tt.name, func(t *testing.T) {
			e := setup(t, ingest.Limits{})
			req, _ := http.NewRequest(http.MethodPost, e.url+"/logs", bytes.NewReader(frames(tt.rec)))
			req.Header.Set("Content-Type", "application/logplex-1")
			req.SetBasicAuth("token", tt.token)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close() // only the status is checked
			if tt.want == "" {
				if resp.StatusCode/100 == 2 {
					t.Fatalf("status %d, want a refusal", resp.StatusCode)
				}
				if got := e.lines(tt.app); len(got) != 0 {
					t.Errorf("lines %q after a refusal", got)
				}
				return
			}
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := e.waitLines(t, tt.app, 1); len(got) != 1 || got[0] != tt.want {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
		})
	}

	// Syslog: no token, or an app token in APP-NAME. printf | nc, as a new user would.
	syslogCases := []struct {
		name string
		rec  string
		want string // "" = dropped
	}{
		{"RFC 5424 as kubeplex[router] with the app's host", "<190>1 2026-11-25T10:00:00Z shop.example.com kubeplex router - - " + l10, ""},
		{"RFC 3164 with a host field and an L10 text", "<190>Nov 25 10:00:00 shop.example.com router: host=shop.example.com " + l10, ""},
		{"JSON-ish line without the access-log fields", `<190>Nov 25 10:00:00 x nginx: {"host":"shop.example.com","msg":"` + l10 + `"}`, ""},
		{"access log carrying the notice in its path", `<190>Nov 25 10:00:00 x nginx: 1.2.3.4 - - [25/Nov/2026:10:00:00 +0000] "GET /Error_L10 HTTP/1.1" 200 1 "-" "-" host=shop.example.com`,
			`kubeplex[router] at=info method=GET path="/Error_L10" host=shop.example.com fwd="1.2.3.4" status=200 bytes=1 protocol=http`},
		{"access log trying to inject fields through the host", `<190>Nov 25 10:00:00 x nginx: 1.2.3.4 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-" host="shop.example.com status=500"`, ""},
		{"app token in APP-NAME as kubeplex's process", "<190>1 2026-11-25T10:00:00Z kubeplex " + tokWeb + " router - - " + l10, "app[router] " + l10},
	}
	for _, proto := range []string{"tcp", "udp"} {
		for _, tt := range syslogCases {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				e := setup(t, ingest.Limits{})
				tcp, _, udp, _ := startSyslog(t, e, time.Minute)
				c, err := net.Dial(proto, map[string]string{"tcp": tcp, "udp": udp}[proto])
				if err != nil {
					t.Fatal(err)
				}
				defer func() { _ = c.Close() }() // the subtest is over
				// A known-good token line after the forgery tells when both were read.
				marker := "<190>1 2026-11-25T10:00:09Z h " + tokAPI + " web.1 - - marker"
				for _, rec := range []string{tt.rec, marker} {
					if _, err := c.Write([]byte(rec + "\n")); err != nil {
						t.Fatal(err)
					}
				}
				e.waitLines(t, "shop/api", 1)
				got := e.lines("shop/web")
				if tt.want == "" {
					if len(got) != 0 {
						t.Errorf("forged record filed: %q", got)
					}
					return
				}
				if len(got) != 1 || got[0] != tt.want {
					t.Errorf("lines %q, want %q", got, tt.want)
				}
			})
		}
	}
}

func errf(format string, args ...any) error { return fmt.Errorf(format, args...) }
