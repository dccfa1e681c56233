package session

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

var (
	k1 = routing.SessionKey{ID: "k1", Key: strings.Repeat("ab", 32)}
	k2 = routing.SessionKey{ID: "k2", Key: strings.Repeat("cd", 32)}
	t0 = time.Unix(1_800_000_000, 0)
)

func base() Claims {
	return Claims{Namespace: "shop", App: "web-shop", Lines: 100, Tail: true, Source: "app", Dyno: "web"}
}

func sign(t *testing.T, c Claims, keys ...routing.SessionKey) string {
	t.Helper()
	id, err := Sign(c, keys, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// reSign signs a hand-made payload with k, as someone holding the key could.
func reSign(payload []byte, k routing.SessionKey) string {
	key, _ := k.Bytes()
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(mac(key, p))
}

func TestSignVerifyRoundTrip(t *testing.T) {
	id := sign(t, base(), k2, k1)
	c, err := Verify(id, []routing.SessionKey{k2, k1}, t0.Add(59*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.KeyID != "k2" || c.AppID() != "shop/web-shop" || c.Lines != 100 || !c.Tail || c.Source != "app" || c.Dyno != "web" {
		t.Fatalf("claims = %+v", c)
	}
	if c.Expires != t0.Add(time.Minute).Unix() || c.IssuedAt != t0.Unix() {
		t.Fatalf("iat %d exp %d", c.IssuedAt, c.Expires)
	}
	// The old key still verifies what it signed, after rotation put k2 first.
	old := sign(t, base(), k1)
	if _, err := Verify(old, []routing.SessionKey{k2, k1}, t0); err != nil {
		t.Fatalf("rotated-out key: %v", err)
	}
	if other := sign(t, base(), k2); other == id {
		t.Fatal("two ids for the same claims are equal: no nonce")
	}
}

func TestVerifyRefuses(t *testing.T) {
	good := sign(t, base(), k1)
	p, s, _ := strings.Cut(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(p)
	// An attacker edits the app in the payload and keeps the signature.
	forgedApp := strings.Replace(string(payload), `"app":"web-shop"`, `"app":"billing"`, 1)
	var c Claims
	_ = json.Unmarshal(payload, &c)
	c.Namespace = "other"
	otherNS, _ := json.Marshal(&c)
	unknownField := strings.Replace(string(payload), `{`, `{"admin":true,`, 1)
	longApp := base()
	longApp.App = strings.Repeat("a", 300)
	longPayload, _ := json.Marshal(&longApp)

	tests := []struct {
		name string
		id   string
		keys []routing.SessionKey
		now  time.Time
		want error
	}{
		{name: "expired", id: good, now: t0.Add(time.Minute), want: ErrExpired},
		{name: "long expired (replay)", id: good, now: t0.Add(24 * time.Hour), want: ErrExpired},
		{name: "wrong key", id: good, keys: []routing.SessionKey{{ID: "k1", Key: k2.Key}}, want: ErrSignature},
		{name: "unknown key id", id: good, keys: []routing.SessionKey{k2}, want: ErrUnknownKey},
		{name: "no keys", id: good, keys: []routing.SessionKey{}, want: ErrUnknownKey},
		{name: "forged app", id: base64.RawURLEncoding.EncodeToString([]byte(forgedApp)) + "." + s, want: ErrSignature},
		{name: "other namespace, old signature", id: base64.RawURLEncoding.EncodeToString(otherNS) + "." + s, want: ErrSignature},
		{name: "truncated signature", id: good[:len(good)-1], want: ErrMalformed},
		{name: "truncated payload", id: p[:len(p)-4] + "." + s, want: ErrMalformed},
		{name: "no signature", id: p, want: ErrMalformed},
		{name: "empty", id: "", want: ErrMalformed},
		{name: "dot only", id: ".", want: ErrMalformed},
		{name: "two dots", id: good + ".x", want: ErrMalformed},
		{name: "dot dot", id: "..", want: ErrMalformed},
		{name: "path traversal", id: "../status", want: ErrMalformed},
		{name: "encoded dots", id: "%2e%2e", want: ErrMalformed},
		{name: "double encoded", id: "%252e%252e%252fstatus", want: ErrMalformed},
		{name: "slash in id", id: p + "/." + s, want: ErrMalformed},
		{name: "padding", id: good + "=", want: ErrMalformed},
		{name: "over-long", id: strings.Repeat("a", MaxIDLen) + "." + s, want: ErrTooLong},
		{name: "unknown field, signed", id: reSign([]byte(unknownField), k1), want: ErrMalformed},
		{name: "over-long app, signed", id: reSign(longPayload, k1), want: ErrMalformed},
		{name: "signed garbage", id: reSign([]byte(`{"kid":"k1"} trailing`), k1), want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == nil {
				keys = []routing.SessionKey{k1}
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			c, err := Verify(tt.id, keys, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %+v, %v; want %v", c, err, tt.want)
			}
		})
	}
}

func TestSignRefusesBadClaims(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Claims)
		keys []routing.SessionKey
		want error
	}{
		{name: "no key", keys: []routing.SessionKey{}, want: ErrNoKey},
		{name: "bad key only", keys: []routing.SessionKey{{ID: "x", Key: "00"}}, want: ErrNoKey},
		{name: "namespace", edit: func(c *Claims) { c.Namespace = "Shop" }, want: ErrMalformed},
		{name: "lines", edit: func(c *Claims) { c.Lines = MaxLines + 1 }, want: ErrMalformed},
		{name: "source with space", edit: func(c *Claims) { c.Source = "a b" }, want: ErrMalformed},
		{name: "dyno too long", edit: func(c *Claims) { c.Dyno = strings.Repeat("w", MaxFilterLen+1) }, want: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			if tt.edit != nil {
				tt.edit(&c)
			}
			keys := tt.keys
			if keys == nil {
				keys = []routing.SessionKey{k1}
			}
			if _, err := Sign(c, keys, t0, time.Minute); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMatchDyno(t *testing.T) {
	tests := []struct {
		filter, proc string
		want         bool
	}{
		{"", "anything", true},
		{"web.1", "web.1", true},
		{"web.1", "web.10", false},
		{"web", "web.1", true},
		{"web", "web.12", true},
		{"web", "web", true},
		{"web", "webhook.1", false},
		{"web", "worker.1", false},
		{"web", "we", false},
		{"web.1", "web", false},
	}
	for _, tt := range tests {
		if got := MatchDyno(tt.filter, []byte(tt.proc)); got != tt.want {
			t.Errorf("MatchDyno(%q, %q) = %v, want %v", tt.filter, tt.proc, got, tt.want)
		}
	}
}

// FuzzVerify: whatever the id, Verify never panics, and what it accepts is exactly
// what a key holder signed (so it re-encodes to claims that pass Check).
func FuzzVerify(f *testing.F) {
	good, err := Sign(base(), []routing.SessionKey{k1}, t0, time.Minute)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add("..")
	f.Add("%2e%2e/")
	f.Add(reSign([]byte(`{"kid":"k1","ns":"a","app":"b","exp":1900000000,"nonce":"n","lines":-1}`), k1))
	f.Add(reSign([]byte(`{"kid":"k1","ns":"a","app":"b","exp":1900000000,"nonce":"n"}`), k1))
	f.Fuzz(func(t *testing.T, id string) {
		c, err := Verify(id, []routing.SessionKey{k1, k2}, t0)
		if err != nil {
			if c != nil {
				t.Fatal("claims returned with an error")
			}
			return
		}
		if err := c.Check(); err != nil {
			t.Fatalf("accepted claims fail Check: %v", err)
		}
		if len(id) > MaxIDLen || strings.ContainsAny(id, "/%=") {
			t.Fatalf("accepted id %q", id)
		}
	})
}
