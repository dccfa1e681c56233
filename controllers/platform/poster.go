// Package platform writes kubeplex's own lines (kubeplex[router], [api], [deploy],
// [build]) into apps' streams. The manager's leader is the only writer, so each event
// is written once whatever the number of router or manager replicas; the lines go to
// the routers' ordinary ingest (POST /logs) with the manager's platform credential,
// which the routing table knows (routing.Table.Platform) and which alone may write
// those processes.
package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// Line is one platform line for one app.
type Line struct {
	// App is the routing-table ID, "<namespace>/<name>".
	App      string
	Time     time.Time
	Priority uint8
	// Proc is the platform process: "router", "api", "deploy", "build".
	Proc string
	Text string
}

// Poster queues lines and sends them, per app and in order, from one goroutine
// (Start). Emit never blocks a reconciler: when the queue is full the line is
// dropped and counted.
type Poster struct {
	// URL is the routers' ingest URL (the router Service's /logs).
	URL string
	// Token returns the platform credential (it is read from its Secret when needed,
	// so a replaced Secret takes effect).
	Token func(ctx context.Context) (string, error)
	// Hostname fills the RFC 5424 HOSTNAME (the manager's pod name).
	Hostname string
	Client   *http.Client
	Log      *slog.Logger
	// RetryFor bounds how long a batch is retried while the routers are unreachable,
	// failing or do not know the credential yet [1m].
	RetryFor time.Duration
	// NotFoundFor bounds the retries of a batch for an app the routers do not know
	// (404): a line about a new app may come before the table that has it, but a line
	// about a deleted app never finds it, and must not hold up everyone else's [10s].
	NotFoundFor time.Duration
	// QueueSize bounds the lines waiting [10000].
	QueueSize int

	once    sync.Once
	queue   chan Line
	mu      sync.Mutex
	sent    int
	dropped int
	// held are lines waiting for a condition (EmitWhen), per app, in order, with the
	// app's later lines behind them.
	held map[string][]heldLine
}

type heldLine struct {
	line     Line
	ready    func() bool // nil: ready as soon as the lines before it are
	deadline time.Time
}

func (p *Poster) init() {
	p.once.Do(func() {
		if p.QueueSize <= 0 {
			p.QueueSize = 10000
		}
		p.queue = make(chan Line, p.QueueSize)
		if p.Client == nil {
			p.Client = &http.Client{Timeout: 10 * time.Second}
		}
		if p.Log == nil {
			p.Log = slog.Default()
		}
		if p.RetryFor <= 0 {
			p.RetryFor = time.Minute
		}
		if p.NotFoundFor <= 0 {
			p.NotFoundFor = 10 * time.Second
		}
	})
}

// Emit queues a line. A nil Poster drops it (platform lines off).
func (p *Poster) Emit(l Line) {
	p.EmitWhen(l, nil, 0)
}

// EmitWhen queues a line once ready reports true, or after wait at the latest: a
// "drain added" line waits until the routers run the drain, so the drain gets its
// own line. Lines for the same app emitted meanwhile wait behind it, so an app's
// lines keep their order. ready nil is Emit.
func (p *Poster) EmitWhen(l Line, ready func() bool, wait time.Duration) {
	if p == nil || p.URL == "" {
		return
	}
	p.init()
	if l.Time.IsZero() {
		l.Time = time.Now()
	}
	if l.Priority == 0 {
		l.Priority = wire.PriorityInfo
	}
	p.mu.Lock()
	if ready != nil || len(p.held[l.App]) > 0 {
		if p.held == nil {
			p.held = map[string][]heldLine{}
		}
		p.held[l.App] = append(p.held[l.App], heldLine{line: l, ready: ready, deadline: time.Now().Add(wait)})
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.enqueue(l)
}

// release queues the held lines whose turn has come.
func (p *Poster) release(now time.Time) {
	var out []Line
	p.mu.Lock()
	for app, hs := range p.held {
		i := 0
		for ; i < len(hs); i++ {
			h := hs[i]
			if h.ready != nil && !h.ready() && now.Before(h.deadline) {
				break
			}
			// Stamped when it is let go: the line tells what is true from then on.
			h.line.Time = now
			out = append(out, h.line)
		}
		if i == len(hs) {
			delete(p.held, app)
		} else {
			p.held[app] = hs[i:]
		}
	}
	p.mu.Unlock()
	for _, l := range out {
		p.enqueue(l)
	}
}

func (p *Poster) enqueue(l Line) {
	select {
	case p.queue <- l:
	default:
		p.mu.Lock()
		p.dropped++
		p.mu.Unlock()
	}
}

// Counts returns how many lines were sent and dropped (queue full or given up).
func (p *Poster) Counts() (sent, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.dropped
}

// NeedLeaderElection makes the Poster a leader-only runnable: the lines it sends
// come from leader-only controllers, and a stepping-down leader stops sending.
func (p *Poster) NeedLeaderElection() bool { return true }

// Start sends queued lines until ctx ends; it implements manager.Runnable.
func (p *Poster) Start(ctx context.Context) error {
	p.init()
	go func() {
		t := time.NewTicker(HoldPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				p.release(now)
			}
		}
	}()
	var batch []Line
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-p.queue:
			batch = append(batch[:0], l)
		}
		// Take what else is waiting for the same app, up to a batch.
	more:
		for len(batch) < 100 {
			select {
			case l := <-p.queue:
				if l.App != batch[0].App {
					p.send(ctx, batch)
					batch = append(batch[:0], l)
					continue
				}
				batch = append(batch, l)
			default:
				break more
			}
		}
		p.send(ctx, batch)
	}
}

// send posts one app's lines, retrying while the routers do not know the app yet
// (404), refuse the credential (401: the table with it is on its way) or fail.
func (p *Poster) send(ctx context.Context, lines []Line) {
	var body []byte
	for _, l := range lines {
		m := wire.Message{Priority: l.Priority, Time: l.Time, Hostname: p.Hostname,
			AppName: routing.PlatformSource, ProcID: l.Proc, Text: []byte(l.Text)}
		body = wire.AppendFrame(body, wire.AppendRFC5424(nil, &m))
	}
	frameID := strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	backoff := 100 * time.Millisecond
	for {
		err := p.post(ctx, lines[0].App, frameID, len(lines), body)
		if err == nil {
			p.mu.Lock()
			p.sent += len(lines)
			p.mu.Unlock()
			return
		}
		limit := p.RetryFor
		if errors.Is(err, errUnknownApp) {
			limit = p.NotFoundFor
		}
		if ctx.Err() != nil || time.Since(start) > limit {
			p.Log.Warn("platform lines not delivered", "app", lines[0].App, "lines", len(lines), "error", err)
			p.mu.Lock()
			p.dropped += len(lines)
			p.mu.Unlock()
			return
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *Poster) post(ctx context.Context, app, frameID string, n int, body []byte) error {
	tok, err := p.Token(ctx)
	if err != nil {
		return fmt.Errorf("read platform credential: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build platform batch: %w", err)
	}
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(n))
	req.Header.Set("Logplex-Frame-Id", frameID)
	req.Header.Set(routing.PlatformAppHeader, app)
	req.Header.Set("User-Agent", "kubeplex-manager")
	req.SetBasicAuth("token", tok)
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("post platform batch: %w", err)
	}
	// Only the status matters; the body is a short reason text.
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errUnknownApp
	case resp.StatusCode/100 != 2:
		return errors.New("post platform batch: " + resp.Status)
	}
	return nil
}

// HoldPoll is how often held lines (EmitWhen) are checked.
var HoldPoll = 200 * time.Millisecond

var errUnknownApp = errors.New("post platform batch: the routers do not know the app")
