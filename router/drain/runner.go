package drain

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/router/message"
)

// Runner moves batches from a queue to a drain in one goroutine: a slow destination
// stalls only its own runner while the queue drops the oldest messages.
type Runner struct {
	Config *Config
	Queue  *Queue
	Stats  *Stats

	drain    Drain
	log      *slog.Logger
	observe  func(latency time.Duration)
	stopping chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// NewRunner starts delivering from q to d. observe, when set, receives the queue
// age of the oldest message of each delivered batch.
func NewRunner(cfg *Config, q *Queue, st *Stats, d Drain, log *slog.Logger, observe func(time.Duration)) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{Config: cfg, Queue: q, Stats: st, drain: d, log: log, observe: observe,
		stopping: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	q.reopen()
	go r.loop()
	return r
}

func (r *Runner) loop() {
	defer close(r.done)
	var b Batch
	lim := r.drain.Limits()
	host := message.Host(r.Config.Token)
	for {
		notice, since := r.Queue.Take(&b, lim, host)
		if b.Len() == 0 {
			select {
			case <-r.Queue.Notify():
				continue
			case <-r.stopping:
				// Flushed: nothing queued and nothing in flight.
				return
			case <-r.ctx.Done():
				return
			}
		}
		r.deliver(&b, notice, since)
		if r.ctx.Err() != nil {
			return
		}
	}
}

func (r *Runner) deliver(b *Batch, notice int64, since time.Time) {
	n, err := r.drain.Deliver(r.ctx, b)
	now := time.Now()
	total := b.Len()
	if n > total {
		n = total
	}
	real := n
	if notice > 0 {
		if n > 0 {
			r.Stats.Announced.Add(notice)
			real--
		} else {
			r.Queue.restoreNotice(notice, since)
		}
	}
	if real > 0 {
		r.Stats.Delivered.Add(int64(real))
		r.Stats.Batches.Add(1)
		r.Stats.success(now)
		if r.observe != nil && b.Enqueued > 0 {
			r.observe(time.Duration(Nanotime() - b.Enqueued))
		}
	}
	lost := total - n
	if notice > 0 && n == 0 {
		lost-- // the notice itself is not a message of the app
	}
	if lost > 0 {
		r.Queue.Dropped(int64(lost))
	}
	// Drains report each failed attempt through Env.Report as it happens; here the
	// outcome is only logged.
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("drain delivery failed", "drain", r.Config.ID, "delivered", real, "lost", lost, "err", err)
	}
}

// Stop ends the runner. Until ctx ends it keeps delivering what is queued (graceful
// flush); then in-flight delivery is cancelled. If keepQueue, the queue survives for
// a successor runner; otherwise what is left in it is counted as dropped.
func (r *Runner) Stop(ctx context.Context, keepQueue bool) {
	r.stopOnce.Do(func() { close(r.stopping) })
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel()
		<-r.done
	}
	r.cancel()
	if !keepQueue {
		if n := r.Queue.close(); n > 0 {
			r.Stats.Dropped.Add(int64(n))
		}
	}
	if err := r.drain.Close(); err != nil {
		r.log.Debug("close drain", "drain", r.Config.ID, "err", err)
	}
}

// Done is closed when the runner's goroutine has ended.
func (r *Runner) Done() <-chan struct{} { return r.done }
