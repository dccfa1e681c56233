package ingest

import (
	"strings"
	"testing"
	"time"
)

func TestVhost(t *testing.T) {
	tests := map[string]string{
		"vhost=shop.example.com GET /":        "shop.example.com",
		`GET / host="shop.example.com" 200`:   "shop.example.com",
		"GET / host=shop.example.com":         "shop.example.com",
		"xhost=nope host=yes.example":         "yes.example",
		"no host here":                        "",
		`host="unterminated`:                  "",
		"ghost=boo":                           "",
		"vhost=a.example host=b.example":      "a.example",
		"upstream_host=x host=real.example 1": "real.example",
	}
	for in, want := range tests {
		if got := string(vhost([]byte(in))); got != want {
			t.Errorf("vhost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScan3164(t *testing.T) {
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in                        string
		ok                        bool
		ts, host, app, proc, text string
	}{
		{in: "<190>Nov 25 10:00:00 ingress-1 nginx: GET / 200", ok: true, ts: "2025-11-25T10:00:00.000000+00:00", host: "ingress-1", app: "nginx", text: "GET / 200"},
		{in: "<13>Jan  2 00:00:01 web sshd[42]: Accepted", ok: true, ts: "2026-01-02T00:00:01.000000+00:00", host: "web", app: "sshd", proc: "42", text: "Accepted"},
		{in: "<13>just text", ok: true, text: "just text"},
		{in: "<13>tag: message", ok: true, app: "tag", text: "message"},
		{in: "<300>Nov 25 10:00:00 h t: x", ok: false},
		{in: "no pri", ok: false},
		{in: "<>x", ok: false},
	}
	for _, tt := range tests {
		f, err := scan3164([]byte(tt.in), now)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v", tt.in, err)
			continue
		}
		if !tt.ok {
			continue
		}
		if string(f.Timestamp) != tt.ts || string(f.Hostname) != tt.host || string(f.AppName) != tt.app ||
			string(f.ProcID) != tt.proc || string(f.Text) != tt.text {
			t.Errorf("%q: got ts=%q host=%q app=%q proc=%q text=%q", tt.in, f.Timestamp, f.Hostname, f.AppName, f.ProcID, f.Text)
		}
	}
}

func FuzzVhost(f *testing.F) {
	f.Add("host=a vhost=b")
	f.Fuzz(func(t *testing.T, s string) {
		_ = vhost([]byte(s))
	})
}

// FuzzParseAccessLog: any text either fails or becomes one router-form line whose
// host is one field (no space, quote or '=' that could start another).
func FuzzParseAccessLog(f *testing.F) {
	f.Add(`10.0.0.1 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-" host=a.example`)
	f.Add(`{"host":"a.example","method":"GET","path":"/","status":200,"bytes_sent":1}`)
	f.Add(`1.2.3.4 - - [x] "GET / HTTP/1.1" 200 1 "-" "-" 83 0.012 [a-b-80] [] 10.0.0.2:80 1 0.011 200 id host=a`)
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parseAccessLog([]byte(s))
		if !ok {
			return
		}
		line := string(appendRouterLine(nil, &a))
		if !strings.HasPrefix(line, "at=info method=") || strings.ContainsAny(line, "\n\r") {
			t.Fatalf("router line %q", line)
		}
	})
}
