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
	if got := splitList(" a, ,b "); strings.Join(got, "|") != "a|b" {
		t.Errorf("splitList = %q", got)
	}
}
