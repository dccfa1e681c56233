// Package session encodes and checks log-session ids: self-contained, signed claims
// that name one app in one namespace and the session's filters. The manager signs
// them when it answers a LogSession; any router replica verifies them with the keys
// of the routing table, so no replica needs state shared with another.
//
// An id is base64url(JSON claims) "." base64url(HMAC-SHA256(key, domain || payload)),
// without padding. Its alphabet is [A-Za-z0-9_-] and one dot, so a valid id can never
// carry a path separator, a percent escape or "..".
package session

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// MaxIDLen bounds an id before any decoding: longer ones are refused unread.
const MaxIDLen = 2048

// MaxLines is the largest history a session may ask for.
const MaxLines = 1500

// MaxSeen bounds Claims.Seen: more lines than this at one microsecond are all
// taken as sent (a cursor then skips the rest of that microsecond).
const MaxSeen = 16

// MaxPos bounds Claims.Pos: a cursor remembers where it stands in at most this
// many replicas' histories (the others fall back to Since and Seen).
const MaxPos = 16

// MaxFilterLen bounds the source and dyno filters, as the LogSession API does.
const MaxFilterLen = 64

// domain separates session signatures from every other use of the same key.
const domain = "kubeplex-session-v1\n"

// Claims are what an id grants.
type Claims struct {
	Namespace string `json:"ns"`
	App       string `json:"app"`
	Lines     int    `json:"lines,omitempty"`
	Tail      bool   `json:"tail,omitempty"`
	Source    string `json:"source,omitempty"`
	Dyno      string `json:"dyno,omitempty"`
	// Since (µs since the epoch) skips history at or before it: a re-issued id
	// continues where the stream it replaces left off. With Seen, only the lines at
	// exactly Since whose LineHash is listed are skipped (the others at that
	// microsecond were not sent yet).
	Since int64    `json:"since,omitempty"`
	Seen  []uint32 `json:"seen,omitempty"`
	// Pos is where the stream stands in each replica's history: a replica that
	// finds its history's ID here skips exactly its lines up to that sequence
	// number, whatever their time; one that does not (restarted, added) uses Since
	// and Seen.
	Pos []Pos `json:"pos,omitempty"`
	// IssuedAt and Expires are Unix seconds; Expires is the connect-by deadline.
	IssuedAt int64 `json:"iat"`
	Expires  int64 `json:"exp"`
	// Nonce makes every id unique, so ids are unguessable even for equal claims.
	Nonce string `json:"nonce"`
	// KeyID names the signing key.
	KeyID string `json:"kid"`
}

// Pos is a position in one replica's history of the app: the sequence number of
// the last line sent from the history with that ID (router/history).
type Pos struct {
	History uint32 `json:"h"`
	Seq     uint64 `json:"s"`
}

// AppID is the app's id in the routing table, "<namespace>/<name>".
func (c *Claims) AppID() string { return c.Namespace + "/" + c.App }

// Errors of Verify. Each is a one-line reason fit to show the client.
var (
	ErrMalformed  = errors.New("session id is malformed")
	ErrTooLong    = errors.New("session id is too long")
	ErrUnknownKey = errors.New("session id is signed with an unknown key")
	ErrSignature  = errors.New("session id has a bad signature")
	ErrExpired    = errors.New("session has expired")
	ErrNoKey      = errors.New("no session signing key")
)

var (
	// dnsName is a Kubernetes object or namespace name (RFC 1123 subdomain).
	dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	// filter is printable ASCII without spaces, as RFC 5424 APP-NAME and PROCID are.
	filter  = regexp.MustCompile(`^[!-~]*$`)
	idChars = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)
)

// Check validates claims for shape: names, line count and filter lengths.
func (c *Claims) Check() error {
	switch {
	case len(c.Namespace) > 63 || !dnsName.MatchString(c.Namespace):
		return fmt.Errorf("%w: namespace", ErrMalformed)
	case !dnsName.MatchString(c.App):
		return fmt.Errorf("%w: app", ErrMalformed)
	case c.Lines < 0 || c.Lines > MaxLines:
		return fmt.Errorf("%w: lines", ErrMalformed)
	case len(c.Source) > MaxFilterLen || !filter.MatchString(c.Source):
		return fmt.Errorf("%w: source", ErrMalformed)
	case len(c.Dyno) > MaxFilterLen || !filter.MatchString(c.Dyno):
		return fmt.Errorf("%w: dyno", ErrMalformed)
	case len(c.Seen) > MaxSeen:
		return fmt.Errorf("%w: seen", ErrMalformed)
	case len(c.Pos) > MaxPos:
		return fmt.Errorf("%w: pos", ErrMalformed)
	case c.Nonce == "" || c.KeyID == "" || c.Expires <= 0 || c.Since < 0:
		return fmt.Errorf("%w: nonce, key id or expiry", ErrMalformed)
	}
	return nil
}

// Sign fills Nonce, KeyID, IssuedAt and Expires (now + ttl) and returns the id,
// signed with the first usable key (keys are newest first).
func Sign(c Claims, keys []routing.SessionKey, now time.Time, ttl time.Duration) (string, error) {
	var key []byte
	for i := range keys {
		if b, ok := keys[i].Bytes(); ok {
			key, c.KeyID = b, keys[i].ID
			break
		}
	}
	if key == nil {
		return "", ErrNoKey
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	c.Nonce = base64.RawURLEncoding.EncodeToString(nonce[:])
	c.IssuedAt = now.Unix()
	c.Expires = Expiry(now, ttl).Unix()
	if err := c.Check(); err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("sign session: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	id := p + "." + base64.RawURLEncoding.EncodeToString(mac(key, p))
	if len(id) > MaxIDLen {
		return "", fmt.Errorf("sign session: %w", ErrTooLong)
	}
	return id, nil
}

// Expiry is the connect-by deadline Sign writes for now and ttl, in whole seconds
// rounded up, so a TTL below a second still leaves the client a moment.
func Expiry(now time.Time, ttl time.Duration) time.Time {
	return time.Unix(now.Add(ttl+time.Second-1).Unix(), 0)
}

func mac(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(domain))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// Verify checks id against keys and returns its claims. The signature is checked
// before the claims are decoded (only the key id is read first), and
// expiry after it, so a forged id learns nothing about time.
func Verify(id string, keys []routing.SessionKey, now time.Time) (*Claims, error) {
	if len(id) > MaxIDLen {
		return nil, ErrTooLong
	}
	if !idChars.MatchString(id) {
		return nil, ErrMalformed
	}
	p, s, _ := strings.Cut(id, ".")
	sig, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(sig) != sha256.Size {
		return nil, ErrMalformed
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(p)
	if err != nil {
		return nil, ErrMalformed
	}
	// The key id is read from the unverified payload only to pick a key; nothing else
	// from it is used before the signature checks out.
	var head struct {
		KeyID string `json:"kid"`
	}
	if err := json.Unmarshal(payload, &head); err != nil || head.KeyID == "" {
		return nil, ErrMalformed
	}
	var key []byte
	for i := range keys {
		if keys[i].ID == head.KeyID {
			key, _ = keys[i].Bytes()
			break
		}
	}
	if key == nil {
		return nil, ErrUnknownKey
	}
	if !hmac.Equal(sig, mac(key, p)) {
		return nil, ErrSignature
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return nil, ErrMalformed
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	if now.Unix() >= c.Expires {
		return nil, ErrExpired
	}
	return &c, nil
}

// MatchDyno reports whether a process name passes the dyno filter: empty passes
// everything, "web.1" only itself, and a process type without a dot ("web") every
// process of that type ("web.1", "web.2") as well as the bare name.
func MatchDyno(filter string, proc []byte) bool {
	if filter == "" || string(proc) == filter {
		return true
	}
	if strings.Contains(filter, ".") {
		return false
	}
	return len(proc) > len(filter) && proc[len(filter)] == '.' && string(proc[:len(filter)]) == filter
}
