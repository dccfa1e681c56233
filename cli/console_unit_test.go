package cli

import (
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestConsolePagePolicy: the page as served (after templating) is exactly what its
// Content-Security-Policy allows, and carries the run's token.
func TestConsolePagePolicy(t *testing.T) {
	c, err := NewConsole(nil, "shop", "", 8001, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "http://127.0.0.1:8001/", nil)
	rec := httptest.NewRecorder()
	c.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	body, policy := rec.Body.String(), rec.Header().Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
		if len(m) != 1 {
			t.Fatalf("%d %s elements", len(m), tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		if want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(policy, tag+"-src "+want) {
			t.Errorf("the served %s is not the one the policy allows (%s)", tag, policy)
		}
	}
	if !strings.Contains(body, `content="`+c.token+`"`) || len(c.token) != 64 {
		t.Error("the page lacks the run's token")
	}
}
