// Package web is the log viewer a browser gets when it opens a session URL: one
// HTML page with its style and script inline (no build step, no extra requests that
// the router would have to route), which reads the same URL as Server-Sent Events.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
)

//go:embed viewer.html
var files embed.FS

var page, csp = mustPage()

// mustPage loads the page and builds a Content-Security-Policy that allows exactly
// its inline style and script (by hash) and connections to its own origin. Log
// lines are text from anyone who can write to the app: the script only ever puts
// them into text nodes, and the policy is the second wall.
func mustPage() ([]byte, string) {
	b, err := files.ReadFile("viewer.html")
	if err != nil {
		panic(fmt.Sprintf("read embedded viewer: %v", err)) // embedded at build time
	}
	hashes := func(tag string) string {
		re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
		var out bytes.Buffer
		for _, m := range re.FindAllSubmatch(b, -1) {
			sum := sha256.Sum256(m[1])
			fmt.Fprintf(&out, " 'sha256-%s'", base64.StdEncoding.EncodeToString(sum[:]))
		}
		return out.String()
	}
	policy := "default-src 'none'; script-src" + hashes("script") + "; style-src" + hashes("style") +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return b, policy
}

// Handler serves the viewer page for any path it is mounted on (the session URL
// itself). The page finds its stream from location, so the handler needs nothing
// from the request.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		// The URL is a capability: keep it out of Referer headers, caches and frames.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(page) // a client that went away needs no answer
	})
}
