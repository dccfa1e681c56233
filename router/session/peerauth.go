package session

import (
	"net/http"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// The peer-call authentication of PeerPath, for the other replica-to-replica calls
// of the router (router/forward): the same key derivation, header, time window,
// addressing and replay checks, so every peer call is authenticated one way.

// SignPeerCall returns the PeerAuthHeader value for body, signed with the newest
// usable key.
func SignPeerCall(keys []routing.SessionKey, now time.Time, body []byte) (string, error) {
	return signPeer(keys, now, body)
}

// VerifyPeerCall checks a PeerAuthHeader value against body and returns the call's
// time.
func VerifyPeerCall(keys []routing.SessionKey, now time.Time, header string, body []byte) (time.Time, error) {
	return verifyPeer(keys, now, header, body)
}

// NewNonce returns a random nonce for one peer call.
func NewNonce() string { return newNonce() }

// AddressedHere reports whether to (the host:port the caller sent the call to)
// names the address r came in on.
func AddressedHere(to string, r *http.Request) bool { return addressedHere(to, r) }

// ReplayGuard remembers the nonces of accepted peer calls for the time window.
type ReplayGuard struct{ g replayGuard }

// Admit records the nonce of a call made at ts, or says why it may not run.
func (g *ReplayGuard) Admit(nonce string, ts, now time.Time) error { return g.g.admit(nonce, ts, now) }

// PeerKeys returns the session keys peer calls are signed with (newest first).
func (h *Handler) PeerKeys() []routing.SessionKey { return h.keys() }

// PeerTransport returns a copy of the transport the session peer calls use, for
// other calls to the same replicas.
func (h *Handler) PeerTransport() *http.Transport {
	if t, ok := h.client.Transport.(*http.Transport); ok {
		return t.Clone()
	}
	return http.DefaultTransport.(*http.Transport).Clone()
}
