package manager

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	o, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Namespace != "kubeplex-system" || o.RoutesSecret != "kubeplex-routes" || o.WebhookPort != 9443 || !o.LeaderElect ||
		o.RouterStatusInterval != 15*time.Second || o.Webhook.CertManagement == "" {
		t.Errorf("defaults = %+v", o)
	}
	o, err = ParseFlags([]string{"--webhook-port=0", "--leader-elect=false", "--router-status-urls", "http://a/status", "--zap-log-level=debug"})
	if err != nil {
		t.Fatal(err)
	}
	if o.WebhookPort != 0 || o.LeaderElect || o.RouterStatusURLs != "http://a/status" {
		t.Errorf("parsed = %+v", o)
	}
	for _, args := range [][]string{{"stray"}, {"--webhook-port", "many"}, {"--no-such-flag"}} {
		if _, err := ParseFlags(args); err == nil {
			t.Errorf("ParseFlags(%q) = nil error", args)
		}
	}
	// Router status URLs: a bare admin address gets /status; another path is refused.
	o, err = ParseFlags([]string{"--router-status-urls", "http://127.0.0.1:9090, https://r2:9090/, http://r3/x/status"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "http://127.0.0.1:9090/status,https://r2:9090/status,http://r3/x/status"; o.RouterStatusURLs != want {
		t.Errorf("router status URLs = %q, want %q", o.RouterStatusURLs, want)
	}
	for _, bad := range []string{"http://r1:9090/metrics", "127.0.0.1:9090", "ftp://r1/status", "http:///status"} {
		if _, err := ParseFlags([]string{"--router-status-urls", bad}); err == nil || !strings.Contains(err.Error(), "--router-status-urls") {
			t.Errorf("--router-status-urls %q: err = %v", bad, err)
		}
	}
	if got := splitList(" a, ,b "); strings.Join(got, "|") != "a|b" {
		t.Errorf("splitList = %q", got)
	}
}
