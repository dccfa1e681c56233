package health

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRedact: whatever error text a router reports, what the manager writes into
// LogDrain status has no URL userinfo, no ingest token and no Authorization value
// left, fits the schema's 1024 bytes, is valid UTF-8 when the input was, and does
// not change when redacted again.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		`post to http drain: Post "https://user:pa55@logs.example.com/x": EOF`,
		"Authorization: Basic dXNlcjpwYXNz and t.0123abcd-0000-4000-8000-0123456789ab",
		"x://y://z@ a://@b " + strings.Repeat("é", 600),
		"authorization bearer abc.def",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := Redact(s)
		if len(r) > maxErrorLen {
			t.Fatalf("%d bytes", len(r))
		}
		if utf8.ValidString(s) && !utf8.ValidString(r) {
			t.Fatalf("valid input, invalid output %q", r)
		}
		for _, m := range userinfoRE.FindAllStringSubmatch(r, -1) {
			if !strings.HasSuffix(m[0], "REDACTED@") && !strings.HasSuffix(m[0], "://@") {
				t.Fatalf("userinfo %q left in %q", m[0], r)
			}
		}
		if m := tokenRE.FindString(r); m != "" {
			t.Fatalf("token %q left in %q", m, r)
		}
		for _, m := range authRE.FindAllStringSubmatch(r, -1) {
			if !strings.HasSuffix(m[0], "REDACTED") {
				t.Fatalf("authorization %q left in %q", m[0], r)
			}
		}
		if len(s) <= maxErrorLen-3 && Redact(r) != r {
			t.Fatalf("not stable: %q → %q → %q", s, r, Redact(r))
		}
	})
}
