// Package http delivers to http:// and https:// drains: logplex-1 batches as Heroku
// drain receivers expect them (Logplex-Msg-Count, Logplex-Frame-Id stable across
// retries, Logplex-Drain-Token, User-Agent, Basic auth), signed with HMAC-SHA256 so
// receivers can verify where a batch came from.
package http

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drain/syslog"
)

// HeaderSignature carries "sha256=<hex HMAC-SHA256 of the request body>" keyed with
// the drain's HMAC key (see docs/drains.md).
const HeaderSignature = "Logplex-Signature"

// Options tune an HTTP drain; zero values take the defaults of
// drain.RequestOptions, with MaxBytes 100 KiB per POST, as Logplex.
type Options struct {
	drain.RequestOptions
}

// DefaultMaxBytes is Options.MaxBytes's default.
const DefaultMaxBytes = 100 << 10

func (o *Options) defaults() { o.Defaults(DefaultMaxBytes) }

// Sink is one HTTP drain. Deliver may run in up to Options.MaxInFlight goroutines at
// once (drain.Concurrent).
type Sink struct {
	cfg  *drain.Config
	env  drain.Env
	opts Options
	url  string

	mu        sync.Mutex
	client    *http.Client
	transport *http.Transport
	born      time.Time
	// l14 announces certificate failures once per failure streak.
	l14 drain.CertNotice
}

var (
	_ drain.Drain      = (*Sink)(nil)
	_ drain.Concurrent = (*Sink)(nil)
)

// New returns a drain for cfg (scheme http or https).
func New(cfg *drain.Config, env drain.Env, opts Options) (*Sink, error) {
	opts.defaults()
	if cfg.URL.Scheme != "http" && cfg.URL.Scheme != "https" {
		return nil, fmt.Errorf("new http drain %s: unsupported scheme %q", cfg.ID, cfg.URL.Scheme)
	}
	if cfg.URL.Host == "" {
		return nil, fmt.Errorf("new http drain %s: URL needs a host", cfg.ID)
	}
	s := &Sink{cfg: cfg, env: env, opts: opts, url: cfg.URL.String()}
	if err := s.newClient(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sink) newClient() error {
	tc, err := syslog.TLSConfig(s.cfg, s.cfg.URL.Hostname())
	if err != nil {
		return fmt.Errorf("new http drain %s: %w", s.cfg.ID, err)
	}
	old := s.transport
	s.client, s.transport = drain.NewHTTPClient(s.env.Dialer, drain.HTTPOptions{TLS: tc, ConnectTimeout: s.opts.ConnectTimeout,
		RequestTimeout: s.opts.RequestTimeout, IdleTimeout: s.opts.IdleTimeout, MaxIdle: s.opts.MaxInFlight})
	s.born = time.Now()
	if old != nil {
		old.CloseIdleConnections()
	}
	return nil
}

// InFlight is how many batches the runner may have in Deliver at once.
func (s *Sink) InFlight() int { return s.opts.MaxInFlight }

// Limits: Logplex's batch bounds; MaxBytes bounds the body.
func (s *Sink) Limits() drain.Limits {
	return drain.Limits{Messages: s.opts.MaxMessages, Bytes: s.opts.MaxBytes}
}

// statusError is a non-2xx answer; retryAfter is what a 429 or 503 asked for.
type statusError struct {
	code       int
	retryAfter time.Duration
}

func (e *statusError) Error() string { return "http drain answered " + strconv.Itoa(e.code) }

// StatusCode lets the runner classify the error.
func (e *statusError) StatusCode() int { return e.code }

// retryable: 429 and 5xx are the receiver asking for a retry; other 4xx and 3xx mean
// the batch will never be accepted (Logplex drops and counts it).
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code == http.StatusTooManyRequests || se.code >= 500
	}
	return true // transport errors
}

// Deliver POSTs b as one logplex-1 batch, retrying transient failures with the same
// frame id and jittered exponential backoff, up to Attempts tries. A 429 or 503 with
// Retry-After waits at least that long (RFC 9110 §10.2.3).
func (s *Sink) Deliver(ctx context.Context, b *drain.Batch) (int, error) {
	s.mu.Lock()
	if time.Since(s.born) > s.opts.MaxAge {
		if err := s.newClient(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	client := s.client
	s.mu.Unlock()
	br := wire.BatchRequest{
		URL:        s.url,
		Body:       b.Bytes(),
		Count:      b.Len(),
		FrameID:    uuid.NewString(),
		DrainToken: s.cfg.Token,
		UserAgent:  s.env.UserAgent,
		Username:   s.cfg.Username,
		Password:   s.cfg.Password,
	}
	var sig string
	if s.cfg.HMACKey != "" {
		sig = Sign([]byte(s.cfg.HMACKey), b.Bytes())
	}
	bo := backoff.New(s.opts.MinBackoff, s.opts.MaxBackoff)
	var err error
	for attempt := 1; ; attempt++ {
		err = s.post(ctx, client, &br, sig)
		if err == nil {
			return b.Len(), nil
		}
		if s.env.Report != nil {
			s.env.Report(err)
		}
		if !retryable(err) || attempt >= s.opts.Attempts || ctx.Err() != nil {
			return 0, err
		}
		wait := bo.Next()
		var se *statusError
		if errors.As(err, &se) {
			wait = max(wait, min(se.retryAfter, s.opts.MaxRetryAfter))
		}
		if !backoff.Sleep(ctx, wait) {
			return 0, errors.Join(ctx.Err(), err)
		}
	}
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP-date. Anything
// else, or a date in the past, asks for nothing.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (s *Sink) post(ctx context.Context, client *http.Client, br *wire.BatchRequest, sig string) error {
	req, err := br.NewRequest(ctx)
	if err != nil {
		return err
	}
	if sig != "" {
		req.Header.Set(HeaderSignature, sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		s.l14.Failed(s.env, err, s.cfg.URL.Scheme+"://"+s.cfg.URL.Host+"/")
		return fmt.Errorf("post to http drain: %w", redact(err))
	}
	s.l14.Succeeded()
	// Read a little of the body so the connection can be reused, then close it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &statusError{code: resp.StatusCode}
		if se.code == http.StatusTooManyRequests || se.code == http.StatusServiceUnavailable {
			se.retryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
		return se
	}
	return nil
}

// redact strips the URL from client errors: drain URLs may carry a path secret.
func redact(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			var ne net.Error
			if errors.As(inner, &ne) && ne.Timeout() {
				return fmt.Errorf("timeout: %w", inner)
			}
			return inner
		}
	}
	return err
}

// Sign returns the Logplex-Signature value for body: "sha256=" and the hex HMAC-SHA256.
func Sign(key, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Close closes idle connections.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}
