// Package ship sends the collector's queue to the router as logplex-1 batches over
// HTTP keep-alive, the way log-shuttle does (at most 500 lines or 250 ms per batch),
// with Logplex's accounting: every record is delivered or announced as lost.
package ship

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// Options configure a Shipper. Zero values take the defaults in brackets.
type Options struct {
	URL string
	// Token is a fixed ingest token; Tokens, when set, is used instead.
	Token  string
	Tokens TokenSource
	Gzip   bool
	// BatchSize bounds the lines of one POST, notices included [500].
	BatchSize int
	// Linger is how long a batch waits to fill after its first line [250ms].
	Linger time.Duration
	// Attempts per batch before its lines are counted as lost (L13) [5].
	Attempts int
	// Backoff between attempts doubles from BackoffMin up to BackoffMax [250ms, 4s],
	// jittered so that the collectors of a cluster do not retry in step.
	BackoffMin, BackoffMax time.Duration
	// Hostname and Proc stamp the L12/L13 notices (source kubeplex).
	Hostname, Proc string
	// Pod and Node, when known, go with every POST (Kubeplex-Pod, Kubeplex-Node):
	// once per batch rather than once per line, for the drains that carry them.
	Pod, Node string
	// AfterBatch runs after each batch is settled (delivered or counted lost), outside
	// the queue lock; CRI tail persists its offsets there.
	AfterBatch func()
	Client     *http.Client
	UserAgent  string
	Log        *slog.Logger
	// MaxConnAge ends a keep-alive connection once it is this old, give or take a
	// quarter (jittered per connection) [5m; negative: never]: the batch that finds it
	// older goes out with "Connection: close", so the next one dials again and the
	// router Service spreads it. Without it a collector stays on the replica it first
	// reached: a replica that restarts or joins gets no collectors back until they
	// restart (docs/scaling.md).
	MaxConnAge time.Duration
}

// DefaultMaxConnAge is Options.MaxConnAge's default.
const DefaultMaxConnAge = 5 * time.Minute

// TokenSource gives the ingest token for each POST (token.File, for a Secret volume).
type TokenSource interface {
	Token() string
	// Reload re-reads the token after the router refused it and reports whether it
	// changed.
	Reload() (changed bool, err error)
}

// fixedToken is a token that never changes (KUBEPLEX_TOKEN).
type fixedToken string

func (t fixedToken) Token() string                   { return string(t) }
func (fixedToken) Reload() (changed bool, err error) { return false, nil }

// Shipper drains one queue into the router.
type Shipper struct {
	q    *queue.Queue
	opts Options
	log  *slog.Logger

	idPrefix string
	seq      uint64

	// pending is a batch taken from the queue but not yet settled; a cancelled Run
	// leaves it for Flush, so shutdown never drops a batch in hand.
	inflight bool
	pending  []queue.Entry
	loss     queue.Loss // the notices carried by pending
	frameID  string
	body     []byte
	count    int

	// The connection the last batch went over (httptrace), when it was first used,
	// and the age at which it is given up.
	conn      net.Conn
	closing   net.Conn // the one asked to close after its batch
	connSince time.Time
	connAge   time.Duration
	// Recycled counts connections given up for their age.
	Recycled atomic.Int64
}

// New returns a Shipper for q.
func New(q *queue.Queue, opts Options) *Shipper {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Linger <= 0 {
		opts.Linger = 250 * time.Millisecond
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.BackoffMin <= 0 {
		opts.BackoffMin = 250 * time.Millisecond
	}
	if opts.BackoffMax < opts.BackoffMin {
		opts.BackoffMax = max(opts.BackoffMin, 4*time.Second)
	}
	if opts.Client == nil {
		opts.Client = NewClient()
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "kubeplex-collector"
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Tokens == nil {
		opts.Tokens = fixedToken(opts.Token)
	}
	if opts.MaxConnAge == 0 {
		opts.MaxConnAge = DefaultMaxConnAge
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	q.SetWake(opts.BatchSize)
	return &Shipper{q: q, opts: opts, log: opts.Log, idPrefix: hex.EncodeToString(b[:])}
}

// NewClient returns an HTTP client tuned for one router: keep-alive, Logplex's connect
// timeout (3 s) and a bound on each request.
func NewClient() *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          2,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 10 * time.Second,
			ForceAttemptHTTP2:     false,
		},
	}
}

// Run ships batches until ctx is done. A batch in hand when ctx ends is kept for Flush.
func (s *Shipper) Run(ctx context.Context) error {
	for {
		if !s.inflight {
			if !s.waitBatch(ctx) {
				return nil
			}
			if !s.fill() {
				continue
			}
		}
		if err := s.send(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A batch was given up (a permanent refusal, or retries exhausted): pause
			// before the next one, or its L13 notice, meets the same answer.
			if !backoff.Sleep(ctx, s.pauseAfterLoss()) {
				return nil
			}
		}
	}
}

// waitBatch waits until a batch should go: BatchSize lines queued, or Linger after the
// first one. It returns false when ctx is done.
func (s *Shipper) waitBatch(ctx context.Context) bool {
	for s.q.Len() == 0 && s.q.PeekLoss().Zero() {
		select {
		case <-s.q.Ready():
		case <-ctx.Done():
			return false
		}
	}
	if s.q.Len() >= s.opts.BatchSize {
		return true
	}
	t := time.NewTimer(s.opts.Linger)
	defer t.Stop()
	for s.q.Len() < s.opts.BatchSize {
		select {
		case <-s.q.Ready():
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// fill takes the next batch from the queue: loss notices first (Logplex puts its
// overflow notice at the head of the next delivered batch), then records. It reports
// whether there is anything to send.
func (s *Shipper) fill() bool {
	s.loss = s.q.TakeLoss()
	s.body = s.body[:0]
	s.count = 0
	var rec []byte
	p := queue.Producer{Hostname: s.opts.Hostname, Proc: s.opts.Proc}
	if s.loss.Dropped > 0 {
		rec = p.Record(queue.SourcePlatform, wire.PriorityError, time.Now(),
			queue.AppendNotice(nil, true, s.loss.Dropped, s.loss.DroppedSince))
		s.body = wire.AppendFrame(s.body, rec)
		s.count++
	}
	if s.loss.Lost > 0 {
		rec = p.Record(queue.SourcePlatform, wire.PriorityError, time.Now(),
			queue.AppendNotice(nil, false, s.loss.Lost, s.loss.LostSince))
		s.body = wire.AppendFrame(s.body, rec)
		s.count++
	}
	s.pending = s.q.Take(s.pending[:0], s.opts.BatchSize-s.count)
	for i := range s.pending {
		s.body = wire.AppendFrame(s.body, s.pending[i].Record)
	}
	s.count += len(s.pending)
	if s.count == 0 {
		return false
	}
	s.seq++
	s.frameID = s.idPrefix + "-" + strconv.FormatUint(s.seq, 10)
	s.inflight = true
	return true
}

// errPermanent marks an answer that retrying cannot fix (4xx other than 401 and 429).
// errUnauthorized, a 401, is retried like a 5xx: a new app's token reaches the routers
// a moment after its Secret exists (they load the routing table by watch), so the first
// batches of a fresh pod can meet a router that does not know the token yet.
var (
	errPermanent    = errors.New("permanent")
	errUnauthorized = errors.New("token refused")
)

// send delivers the pending batch with retries. On success or after the last attempt
// the batch is settled; when ctx ends first it stays pending.
func (s *Shipper) send(ctx context.Context) error {
	bo := backoff.New(s.opts.BackoffMin, s.opts.BackoffMax)
	var err error
	reauthed := false
	for attempt := 1; attempt <= s.opts.Attempts; attempt++ {
		// An attempt under way is not cut short by ctx: the router may already have
		// taken the batch, and sending it again after a cut would repeat it. Each
		// request is bounded by the client's timeout instead.
		if err = s.post(context.WithoutCancel(ctx)); err == nil {
			s.q.Commit(s.pending)
			s.settle()
			return nil
		}
		// A rotated token reaches a Secret volume some time after the Secret changed;
		// a 401 is the sign that the old one has expired, so look at the file now and,
		// if it holds another token, send the batch once more with it. The retry costs
		// no attempt: the refusal said nothing about the router's health.
		if errors.Is(err, errUnauthorized) && !reauthed {
			reauthed = true
			changed, rerr := s.opts.Tokens.Reload()
			if rerr != nil {
				s.log.Warn("reload ingest token", "error", rerr)
			}
			if changed {
				s.log.Info("ingest token refused; retrying the batch with the new token", "frame_id", s.frameID)
				attempt--
				continue
			}
		}
		if ctx.Err() != nil || errors.Is(err, errPermanent) {
			break
		}
		if attempt == s.opts.Attempts {
			break
		}
		backoff.Sleep(ctx, bo.Next())
	}
	if ctx.Err() != nil && !errors.Is(err, errPermanent) {
		return ctx.Err()
	}
	s.log.Warn("batch not delivered", "lines", s.count, "frame_id", s.frameID, "error", err)
	s.lose()
	return err
}

// pauseAfterLoss is the wait after a batch was given up: about BackoffMax, jittered
// over its upper half, so collectors that gave up together come back apart.
func (s *Shipper) pauseAfterLoss() time.Duration {
	b := backoff.Backoff{Min: s.opts.BackoffMax, Max: s.opts.BackoffMax}
	return b.Next()
}

// lose counts the pending batch as lost (L13). The counts its notices carried are put
// back as they were, to be announced with the next batch that gets through.
func (s *Shipper) lose() {
	s.q.LoseEntries(s.pending, time.Now())
	if !s.loss.Zero() {
		s.q.AddLoss(s.loss)
	}
	s.settle()
}

func (s *Shipper) settle() {
	clear(s.pending)
	s.pending = s.pending[:0]
	s.inflight = false
	s.loss = queue.Loss{}
	if s.opts.AfterBatch != nil {
		s.opts.AfterBatch()
	}
}

func (s *Shipper) post(ctx context.Context) error {
	br := wire.BatchRequest{
		URL: s.opts.URL, Body: s.body, Count: s.count, FrameID: s.frameID,
		UserAgent: s.opts.UserAgent, Username: "token", Password: s.opts.Tokens.Token(), Gzip: s.opts.Gzip,
	}
	req, err := br.NewRequest(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", errPermanent, err)
	}
	// log-shuttle's header: the batch id, for routers that de-duplicate on it.
	req.Header.Set(wire.HeaderRequestID, s.frameID)
	if s.opts.Pod != "" {
		req.Header.Set(wire.HeaderPod, s.opts.Pod)
	}
	if s.opts.Node != "" {
		req.Header.Set(wire.HeaderNode, s.opts.Node)
	}
	if s.opts.MaxConnAge > 0 {
		if s.conn != nil && time.Since(s.connSince) > s.connAge {
			// The last batch on this connection: the next one dials again. The batch
			// itself is sent and answered as any other.
			req.Close = true
			s.closing, s.conn = s.conn, nil
			s.Recycled.Add(1)
		}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: s.gotConn}))
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post batch: %w", redact(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: post batch: router answered %s", errUnauthorized, resp.Status)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("post batch: router answered %s", resp.Status)
	default:
		return fmt.Errorf("%w: post batch: router answered %s", errPermanent, resp.Status)
	}
}

// gotConn notes the connection a batch goes over: a new one starts its age.
func (s *Shipper) gotConn(info httptrace.GotConnInfo) {
	if info.Conn == s.conn || info.Conn == s.closing {
		return
	}
	s.conn, s.connSince = info.Conn, time.Now()
	// 0.75–1.25 of the age: collectors that connected together do not all leave
	// together.
	s.connAge = time.Duration(float64(s.opts.MaxConnAge) * (0.75 + 0.5*mathrand.Float64()))
}

// redact drops the URL from transport errors: the router URL may carry userinfo.
func redact(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// Flush ships what is queued (and the batch in hand) until the queue and the loss
// counters are empty or ctx ends. What is left then is returned as a count, for the
// caller to log: it can no longer be announced in-band.
func (s *Shipper) Flush(ctx context.Context) (left int) {
	for ctx.Err() == nil {
		if !s.inflight && !s.fill() {
			return 0
		}
		_ = s.send(ctx)
	}
	left = s.q.Len() + len(s.pending)
	l := s.q.PeekLoss()
	return left + l.Dropped + l.Lost
}
