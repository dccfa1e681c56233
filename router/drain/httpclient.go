package drain

import (
	"crypto/tls"
	"net/http"
	"time"
)

// HTTPOptions are what an HTTP-based drain (http://, otlp+http://) sets on its client.
type HTTPOptions struct {
	// TLS verifies the receiver (nil: plain HTTP or the transport's defaults).
	TLS *tls.Config
	// ConnectTimeout bounds dialling and the TLS handshake; RequestTimeout a whole
	// request and the wait for the answer's headers.
	ConnectTimeout, RequestTimeout time.Duration
	// IdleTimeout closes idle connections; MaxIdle is how many are kept per host (one
	// per request in flight).
	IdleTimeout time.Duration
	MaxIdle     int
}

// NewHTTPClient returns a client that dials only through d (the egress policy at
// dial time), never through a proxy and never follows a redirect, and its transport
// (to close idle connections).
func NewHTTPClient(d *Dialer, o HTTPOptions) (*http.Client, *http.Transport) {
	dialer := *d
	dialer.Timeout = o.ConnectTimeout
	t := &http.Transport{
		// No proxy: a proxy would dial on the router's behalf and bypass the address check.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       o.TLS,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		IdleConnTimeout:       o.IdleTimeout,
		MaxIdleConnsPerHost:   o.MaxIdle,
		ResponseHeaderTimeout: o.RequestTimeout,
		ForceAttemptHTTP2:     true,
	}
	c := &http.Client{
		Transport: t,
		Timeout:   o.RequestTimeout,
		// Redirects would lead the router to addresses the manager never checked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, t
}
