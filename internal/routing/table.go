// Package routing defines the routing table: the whole of the router's configuration,
// rendered by the manager from LogApps and LogDrains, stored in Secrets and read by
// every router replica. It is the one contract between the control plane and the
// data plane, so it is versioned by content and encoded deterministically.
package routing

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SecretKey is the data key that holds a (shard of a) table in a Secret.
const SecretKey = "routes.json"

// DefaultHistory is the number of lines kept per app when a table says nothing.
const DefaultHistory = 1500

// Table is the routing configuration.
type Table struct {
	// Version identifies the content: a hash of Apps, set by Seal. Routers report the
	// version they run so the manager can tell when a change has reached them.
	Version string `json:"version"`
	// Shard and Shards say which part of a split table this is (0 of 1 when whole).
	Shard  int `json:"shard"`
	Shards int `json:"shards"`
	// Digest identifies the apps of this shard (set by Split); Digests, in shard 0,
	// lists every shard's, so a reader fetches only the shards that changed.
	Digest  string   `json:"digest,omitempty"`
	Digests []string `json:"digests,omitempty"`
	// Apps, sorted by ID.
	Apps []App `json:"apps"`
	// SessionKeys sign log-session URLs, newest first. The manager signs; routers
	// verify a URL with the key its key id names, so a rotated-out key keeps working
	// until it leaves the list. Only shard 0 carries them.
	SessionKeys []SessionKey `json:"sessionKeys,omitempty"`
	// Platform are kubeplex's own credentials (the manager's): a batch sent with one
	// names its app in the PlatformAppHeader and keeps the sources and processes its
	// frames give. They are the only way to write a platform process (PlatformProcesses).
	Platform []Token `json:"platform,omitempty"`
}

// SessionKey is one HMAC-SHA256 key for session URLs and replica-to-replica calls.
type SessionKey struct {
	// ID names the key in a signed URL: short, and not secret.
	ID string `json:"id"`
	// Key is the hex-encoded 256-bit secret.
	Key string `json:"key"`
	// Created is when the manager made the key (it rotates by age).
	Created time.Time `json:"created"`
}

// Bytes returns the decoded key; ok is false when Key is not 32 hex-encoded bytes.
func (k *SessionKey) Bytes() ([]byte, bool) {
	b, err := hex.DecodeString(k.Key)
	return b, err == nil && len(b) == 32
}

// PlatformSource is the source of kubeplex's own lines (Logplex's "heroku").
const PlatformSource = "kubeplex"

// ProcRouter is the process of the router's and the load balancer's lines.
const ProcRouter = "router"

// PlatformAppHeader names the app of a batch sent with a platform credential.
const PlatformAppHeader = "Kubeplex-App"

// PlatformProcesses are the processes of source kubeplex that only kubeplex writes:
// a collector credential may write source kubeplex for the app's own processes
// (web.1: process events), never as one of these.
var PlatformProcesses = []string{"api", "build", "deploy", "logplex", "router"}

// IsPlatformProcess reports whether p is one of PlatformProcesses.
func IsPlatformProcess(p []byte) bool {
	for _, q := range PlatformProcesses {
		if string(p) == q {
			return true
		}
	}
	return false
}

// App is one LogApp.
type App struct {
	// ID is "<namespace>/<name>"; it names the app in every router API.
	ID string `json:"id"`
	// History is the number of lines kept for log sessions.
	History int `json:"history"`
	// Tokens authenticate producers and name the source of their lines.
	Tokens []Token `json:"tokens,omitempty"`
	// Hosts map load-balancer access logs (syslog HOSTNAME or a vhost field) to the app.
	Hosts []string `json:"hosts,omitempty"`
	// Drains, sorted by ID.
	Drains []Drain `json:"drains,omitempty"`
}

// Token is an ingest credential. The manager stores only its SHA-256, so the routing
// table never holds a usable ingest token; a hand-written table may give Token itself.
type Token struct {
	SHA256 string `json:"sha256,omitempty"`
	Token  string `json:"token,omitempty"`
	// Source is the source of lines sent with this token ("app" for collectors and
	// app tokens, an add-on's name for its input token).
	Source string `json:"source"`
	// AllowedSources are other source names a producer may set in APP-NAME. Any
	// other APP-NAME is replaced with Source. The platform source is never granted
	// this way (routers ignore it here, as tables from older managers carry it): see
	// Collector and Table.Platform.
	AllowedSources []string `json:"allowedSources,omitempty"`
	// Collector marks the credential of the app's injected collectors (a Secret only
	// their sidecars mount): besides Source it may write source kubeplex for the
	// app's own processes (process events, L12/L13), never for a platform process.
	Collector bool `json:"collector,omitempty"`
	// NotAfter ends a rotated-out token's grace period.
	NotAfter *time.Time `json:"notAfter,omitempty"`
}

// Digest returns the hex SHA-256 that identifies the token.
func (t *Token) Digest() string {
	if t.SHA256 != "" {
		return strings.ToLower(t.SHA256)
	}
	return HashToken(t.Token)
}

// HashToken returns the hex SHA-256 of a token, as the table stores it.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// TokenMatches compares a presented token with a stored digest in constant time.
func TokenMatches(presented, digest string) bool {
	return subtle.ConstantTimeCompare([]byte(HashToken(presented)), []byte(digest)) == 1
}

// Drain is one LogDrain.
type Drain struct {
	// ID is "<namespace>/<name>".
	ID string `json:"id"`
	// Token is the drain token, d.<uuid>, sent with every message.
	Token string `json:"token"`
	// URL is the destination without userinfo.
	URL string `json:"url"`
	// Username and Password are Basic auth credentials for http(s) drains.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// HMACKey signs HTTP batches (hex HMAC-SHA256 of the body) when set.
	HMACKey string `json:"hmacKey,omitempty"`
	// TLS options for syslog+tls, https, otlp+https and otlp+grpcs.
	TLS *TLS `json:"tls,omitempty"`
	// Headers are sent with every OTLP request (gRPC metadata for otlp+grpc), names
	// lower-case. Values are credentials: never logged or reported.
	Headers map[string]string `json:"headers,omitempty"`
	// Compression of OTLP request bodies: CompressionGzip (also when empty, the
	// LogDrain API's default) or CompressionNone.
	Compression string `json:"compression,omitempty"`
}

// OTLP drain compressions (Drain.Compression).
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// TLS options for a drain.
type TLS struct {
	CAPEM              string `json:"caPEM,omitempty"`
	ServerName         string `json:"serverName,omitempty"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify,omitempty"`
}

// Seal sorts the table into its canonical order and sets Version from the content.
func (t *Table) Seal() { (*Encoder)(nil).Seal(t) }

// Decode parses a table (or one shard of it) and checks it.
func Decode(b []byte) (*Table, error) {
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("decode routing table: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate checks what the router relies on: unique app and drain IDs, and a source
// and secret for every token.
func (t *Table) Validate() error {
	keys := map[string]bool{}
	for _, k := range t.SessionKeys {
		if _, ok := k.Bytes(); !ok || k.ID == "" || len(k.ID) > 64 || keys[k.ID] {
			return fmt.Errorf("validate routing table: session key %q empty, repeated or not 32 hex bytes", k.ID)
		}
		keys[k.ID] = true
	}
	// Sized up front: at 50,000 drains growing these maps cost more than filling them.
	nd := 0
	for i := range t.Apps {
		nd += len(t.Apps[i].Drains)
	}
	apps := make(map[string]bool, len(t.Apps))
	drains := make(map[string]bool, nd)
	for _, a := range t.Apps {
		if a.ID == "" || apps[a.ID] {
			return fmt.Errorf("validate routing table: app id %q empty or repeated", a.ID)
		}
		apps[a.ID] = true
		if a.History < 0 {
			return fmt.Errorf("validate routing table: app %q: negative history", a.ID)
		}
		for _, tok := range a.Tokens {
			if tok.Source == "" || (tok.SHA256 == "" && tok.Token == "") {
				return fmt.Errorf("validate routing table: app %q: token without source or secret", a.ID)
			}
		}
		for _, d := range a.Drains {
			if d.ID == "" || drains[d.ID] {
				return fmt.Errorf("validate routing table: drain id %q empty or repeated", d.ID)
			}
			drains[d.ID] = true
		}
	}
	for _, tok := range t.Platform {
		if tok.SHA256 == "" && tok.Token == "" {
			return errors.New("validate routing table: platform credential without secret")
		}
	}
	return nil
}
