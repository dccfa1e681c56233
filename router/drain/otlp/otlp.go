// Package otlp delivers to OpenTelemetry receivers: otlp+http:// and otlp+https://
// (OTLP/HTTP, binary protobuf) and otlp+grpc:// and otlp+grpcs:// (OTLP/gRPC). Each
// message becomes one LogRecord (docs/drains.md has the mapping); retries follow the
// OTLP specification's retryable answers, and records a receiver rejects in a partial
// success are counted as dropped like any other loss.
package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"

	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/drain"
)

// Options tune an OTLP drain; zero values take the defaults of
// drain.RequestOptions, with MaxBytes 512 KiB of frames per export request (well
// below the 4 MiB a gRPC receiver takes by default).
type Options struct {
	drain.RequestOptions
}

// DefaultMaxBytes is Options.MaxBytes's default.
const DefaultMaxBytes = 512 << 10

func (o *Options) defaults() { o.Defaults(DefaultMaxBytes) }

// The URL schemes of OTLP drains.
const (
	SchemeHTTP  = "otlp+http"
	SchemeHTTPS = "otlp+https"
	SchemeGRPC  = "otlp+grpc"
	SchemeGRPCS = "otlp+grpcs"
)

// exporter sends one request over one transport; export may run concurrently. It
// returns the receiver's partial success (nil for none) or an *exportError.
type exporter interface {
	export(ctx context.Context, req *request) (*collogs.ExportLogsPartialSuccess, error)
	close()
}

// request is one export request being sent: the encoded ExportLogsServiceRequest and
// the exporter's scratch space. Requests are pooled across drains, so memory follows
// the requests in flight, not the number of drains.
type request struct {
	pb  []byte // protobuf
	tmp []byte // the encoder's scratch
	z   bytes.Buffer
	zw  *gzip.Writer
}

var requests = sync.Pool{New: func() any { return new(request) }}

// maxPooled: a request buffer that grew past this (a batch of huge lines) is left to
// the garbage collector rather than kept.
const maxPooled = 4 << 20

// exportError is a failed export, classified as the OTLP specification says.
type exportError struct {
	err       error
	retryable bool
	// wait is what the receiver asked for (Retry-After, RetryInfo), 0 if nothing.
	wait time.Duration
}

func (e *exportError) Error() string { return e.err.Error() }
func (e *exportError) Unwrap() error { return e.err }

// Sink is one OTLP drain. Deliver may run in up to Options.MaxInFlight goroutines at
// once (drain.Concurrent).
type Sink struct {
	cfg  *drain.Config
	env  drain.Env
	opts Options
	enc  *encoder

	renewMu sync.Mutex // held while the exporter is replaced
	mu      sync.Mutex
	exp     exporter
	born    time.Time
}

var (
	_ drain.Drain      = (*Sink)(nil)
	_ drain.Concurrent = (*Sink)(nil)
	_ drain.OriginUser = (*Sink)(nil)
)

// New returns a drain for cfg (scheme otlp+http, otlp+https, otlp+grpc or otlp+grpcs).
func New(cfg *drain.Config, env drain.Env, opts Options) (*Sink, error) {
	opts.defaults()
	if cfg.URL.Host == "" {
		return nil, fmt.Errorf("new otlp drain %s: URL needs a host", cfg.ID)
	}
	switch cfg.Compression {
	case "", routing.CompressionGzip, routing.CompressionNone:
	default:
		return nil, fmt.Errorf("new otlp drain %s: unknown compression %q", cfg.ID, cfg.Compression)
	}
	s := &Sink{cfg: cfg, env: env, opts: opts, enc: newEncoder(cfg)}
	if err := s.renew(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sink) renew() error {
	var (
		exp exporter
		err error
	)
	switch s.cfg.URL.Scheme {
	case SchemeHTTP, SchemeHTTPS:
		exp, err = newHTTPExporter(s.cfg, s.env, s.opts)
	case SchemeGRPC, SchemeGRPCS:
		exp, err = newGRPCExporter(s.cfg, s.env, s.opts)
	default:
		err = fmt.Errorf("unsupported scheme %q", s.cfg.URL.Scheme)
	}
	if err != nil {
		return fmt.Errorf("new otlp drain %s: %w", s.cfg.ID, err)
	}
	s.mu.Lock()
	old := s.exp
	s.exp, s.born = exp, time.Now()
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	return nil
}

// InFlight is how many batches the runner may have in Deliver at once.
func (s *Sink) InFlight() int { return s.opts.MaxInFlight }

// UsesOrigin makes the router carry each line's pod and node to the drain
// (drain.OriginUser): they become k8s.pod.name and k8s.node.name.
func (s *Sink) UsesOrigin() bool { return true }

// renewIfOld replaces the exporter once it is older than MaxAge, as Logplex
// recycles drain connections; one of the batches in flight does it.
func (s *Sink) renewIfOld() error {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	s.mu.Lock()
	old := s.exp != nil && time.Since(s.born) > s.opts.MaxAge
	s.mu.Unlock()
	if !old {
		return nil
	}
	return s.renew()
}

// Limits bound one export request.
func (s *Sink) Limits() drain.Limits {
	return drain.Limits{Messages: s.opts.MaxMessages, Bytes: s.opts.MaxBytes}
}

// Deliver exports b as one request, retrying what the OTLP specification calls
// retryable with jittered exponential backoff (at least as long as the receiver
// asked), up to Attempts tries. Records the receiver reports as rejected in a partial
// success are returned as not delivered, so the runner counts and announces them.
func (s *Sink) Deliver(ctx context.Context, b *drain.Batch) (int, error) {
	if err := s.renewIfOld(); err != nil {
		return 0, err
	}
	req := requests.Get().(*request)
	defer func() {
		if cap(req.pb) <= maxPooled && req.z.Cap() <= maxPooled {
			requests.Put(req)
		}
	}()
	req.pb, req.tmp = s.enc.encode(req.pb[:0], req.tmp, b, time.Now())
	bo := backoff.New(s.opts.MinBackoff, s.opts.MaxBackoff)
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		exp := s.exp
		s.mu.Unlock()
		if exp == nil {
			return 0, drain.ErrClosed
		}
		ps, err := exp.export(ctx, req)
		if err == nil {
			if ps == nil || ps.RejectedLogRecords <= 0 {
				return b.Len(), nil
			}
			rej := int(min(ps.RejectedLogRecords, int64(b.Len())))
			perr := fmt.Errorf("otlp receiver rejected %d of %d log records: %s", rej, b.Len(), clip(ps.ErrorMessage, 200))
			if s.env.Report != nil {
				s.env.Report(perr)
			}
			return b.Len() - rej, perr
		}
		if s.env.Report != nil {
			s.env.Report(err)
		}
		var ee *exportError
		retry := !errors.As(err, &ee) || ee.retryable
		if !retry || attempt >= s.opts.Attempts || ctx.Err() != nil {
			return 0, err
		}
		wait := bo.Next()
		if ee != nil {
			wait = max(wait, min(ee.wait, s.opts.MaxRetryAfter))
		}
		if !backoff.Sleep(ctx, wait) {
			return 0, errors.Join(ctx.Err(), err)
		}
	}
}

// Close releases the connections.
func (s *Sink) Close() error {
	s.mu.Lock()
	exp := s.exp
	s.exp = nil
	s.mu.Unlock()
	if exp != nil {
		exp.close()
	}
	return nil
}

// clip bounds a receiver's text in errors and status.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
