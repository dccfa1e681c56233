package drain

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/router/message"
)

// RunnerOptions tune a Runner; zero values take the defaults in brackets.
type RunnerOptions struct {
	// Logger already carries the drain's id (and app); the runner adds no "drain" key.
	Logger *slog.Logger
	// Observe, when set, receives the queue age of the oldest message of each
	// delivered batch.
	Observe func(latency time.Duration)
	// PauseMin and PauseMax bound the jittered pause after a batch of which nothing
	// was delivered [500 ms, 30 s]. Without it, a drain that refuses everything gets
	// its L10 notice again at once, thousands of POSTs a second.
	PauseMin, PauseMax time.Duration
	// LogEvery is the least time between two "delivery failed" lines of one failure
	// streak [1 min].
	LogEvery time.Duration
	// Carry is the batch the drain's previous runner took and never sent
	// (Runner.Handover); this runner delivers it before anything else.
	Carry *Carry
}

// Carry is a batch one runner hands to its successor on the same queue: taken from
// the queue and not sent, so the successor delivers it as its first batch.
type Carry struct {
	b      Batch
	notice int64
	since  time.Time
}

// Len returns the carried batch's frame count.
func (c *Carry) Len() int { return c.b.Len() }

// Drop counts a carried batch no runner will deliver as dropped from q (its L10
// notice, if it has one, is announced again later). c may be nil.
func (c *Carry) Drop(q *Queue) {
	if c == nil || c.b.Len() == 0 {
		return
	}
	lost := c.b.Len()
	if c.notice > 0 {
		q.restoreNotice(c.notice, c.since)
		lost--
	}
	q.Dropped(int64(lost))
}

// Runner moves batches from a queue to a drain in one goroutine: a slow destination
// stalls only its own runner while the queue drops the oldest messages.
//
// When the runner is idle and its drain is Immediate, Offer writes the batch from the
// producer's goroutine instead, without blocking; only what the destination does not
// take at once is left to the runner goroutine.
type Runner struct {
	Config *Config
	Queue  *Queue
	Stats  *Stats

	drain    Drain
	imm      Immediate  // drain, when it can write without waiting
	fwd      bool       // drain is Forwarding
	idler    IdleCloser // drain, when it keeps a connection between batches
	lim      Limits
	host     string
	log      *slog.Logger
	observe  func(latency time.Duration)
	pause    *backoff.Backoff // guarded by mu
	failLog  FailureLog       // guarded by mu
	idle     *time.Timer      // the runner goroutine's, for idleTimer
	stopping chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
	// closeOnce: the drain is closed once, however often Stop is called (Reown's
	// error path stops a runner Handover has stopped already).
	closeOnce sync.Once
	// concurrent: the runner keeps several batches in flight (loopConcurrent).
	// detached is closed by Handover for such a runner; quiet, by the runner once
	// it takes nothing more from the queue.
	concurrent      bool
	detached, quiet chan struct{}
	detachOnce      sync.Once

	// mu is held by whoever delivers (the runner goroutine, or Offer), so batches go
	// out one at a time in queue order. The fields below are guarded by it.
	mu sync.Mutex
	b  Batch
	// pending: b was taken and partly written by Offer; the runner finishes it
	// before it takes anything else.
	pending bool
	notice  int64
	since   time.Time
	// ended: the runner goroutine has returned; Offer leaves records in the queue.
	ended bool
	// usesOrigin: the drain is an OriginUser; set before the runner starts.
	usesOrigin bool
	// handover: Handover is stopping the runner; a batch Deliver returns unsent
	// (ErrUnsent) is kept in carry instead of being counted as dropped.
	handover atomic.Bool
	carry    *Carry
}

// UsesOrigin reports whether the drain uses its records' origins (OriginUser).
func (r *Runner) UsesOrigin() bool { return r.usesOrigin }

// NewRunner starts delivering from q to d.
func NewRunner(cfg *Config, q *Queue, st *Stats, d Drain, o RunnerOptions) *Runner {
	ctx, cancel := context.WithCancel(context.Background())
	if o.Logger == nil {
		o.Logger = slog.Default().With("drain", cfg.ID)
	}
	if o.PauseMin <= 0 {
		o.PauseMin = 500 * time.Millisecond
	}
	if o.PauseMax <= 0 {
		o.PauseMax = 30 * time.Second
	}
	r := &Runner{Config: cfg, Queue: q, Stats: st, drain: d, lim: d.Limits(), host: message.Host(cfg.Token),
		log: o.Logger, observe: o.Observe, pause: backoff.New(o.PauseMin, o.PauseMax), failLog: FailureLog{Every: o.LogEvery},
		stopping: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		detached: make(chan struct{}), quiet: make(chan struct{})}
	r.imm, _ = d.(Immediate)
	r.idler, _ = d.(IdleCloser)
	if u, ok := d.(OriginUser); ok && u.UsesOrigin() {
		r.usesOrigin = true
		r.b.KeepOrigins()
	}
	_, r.fwd = d.(Forwarding)
	st.forwarding.Store(r.fwd)
	q.reopen()
	if c := o.Carry; c != nil && c.b.Len() > 0 {
		if c.b.Len() <= r.lim.Messages && c.b.Size() <= r.lim.Bytes {
			// Delivered first, as a batch Offer left: Offer queues behind it.
			r.b, r.pending, r.notice, r.since = c.b, true, c.notice, c.since
			r.b.keepOrigin = r.usesOrigin
		} else {
			// Too big for this drain: lost, as it would have been without a successor.
			r.account(&c.b, 0, c.notice, c.since, nil)
		}
	}
	if c, ok := d.(Concurrent); ok && r.imm == nil && c.InFlight() > 1 {
		r.concurrent = true
		go r.loopConcurrent(c.InFlight())
	} else {
		go r.loop()
	}
	return r
}

// Offer queues drain records (see Queue.push) and gets them moving: written at once
// from the caller's goroutine when the runner is idle and the drain can take them
// without waiting, otherwise by waking the runner. It never blocks on delivery. It
// reports whether the queue is more than half full.
func (r *Runner) Offer(recs [][]byte) (busy bool) {
	if r.imm == nil || !r.mu.TryLock() {
		// The runner is delivering (or the drain cannot write inline): it takes
		// these records next.
		busy = r.Queue.push(recs)
		r.Queue.wake()
		return busy
	}
	if r.ended || r.pending {
		r.mu.Unlock()
		busy = r.Queue.push(recs)
		r.Queue.wake()
		return busy
	}
	notice, since, direct := r.Queue.takeDirect(recs, &r.b, r.lim, r.host)
	if !direct {
		busy = r.Queue.push(recs)
		notice, since = r.Queue.Take(&r.b, r.lim, r.host)
	}
	if r.b.Len() == 0 {
		r.mu.Unlock()
		return busy
	}
	r.b.Written = r.imm.TryWrite(&r.b, 0)
	if r.b.Written == r.b.Size() {
		r.account(&r.b, r.b.Len(), notice, since, nil)
		r.mu.Unlock()
		if r.Queue.Len() > 0 {
			// More than one batch's worth was queued: the runner sends the rest.
			r.Queue.wake()
		}
		return busy
	}
	// The destination did not take it all at once: the runner finishes this batch,
	// and may wait for the destination, which Offer must not.
	r.pending, r.notice, r.since = true, notice, since
	r.mu.Unlock()
	r.Queue.wake()
	return busy
}

// Backlogged reports whether n more messages would overflow the queue (or, for more
// than it holds, whether it is not empty) while the drain is delivering: its latest
// outcome was a success, within the last two seconds. A sender that waits for its
// answer (POST /logs) can then be held until there is room instead of having the
// oldest lines dropped; a drain that is failing, has not delivered yet or stopped
// making progress is never waited for.
func (r *Runner) Backlogged(n int) bool {
	l := r.Queue.Len()
	return l > 0 && l+n > r.Queue.max() && r.Stats.delivering(time.Now())
}

// Forwarding reports whether the runner hands its batches to another replica
// (its drain is Forwarding) instead of delivering them.
func (r *Runner) Forwarding() bool { return r.fwd }

// Concurrent reports whether the runner keeps several batches in flight (its drain
// is Concurrent): Handover then leaves them to complete, and the caller stops it.
func (r *Runner) Concurrent() bool { return r.concurrent }

// Delivering reports whether the drain's latest outcome was a success, within the
// last two seconds.
func (r *Runner) Delivering() bool { return r.Stats.delivering(time.Now()) }

func (r *Runner) loop() {
	defer close(r.done)
	defer func() {
		r.mu.Lock()
		r.ended = true
		if r.pending {
			// Offer left a batch after the runner's last look, which only happens when
			// it was cancelled: what Offer wrote is delivered, the rest is lost, as
			// with a delivery cut short.
			r.pending = false
			n := 0
			for n < r.b.Len() && r.b.End(n) <= r.b.Written {
				n++
			}
			r.account(&r.b, n, r.notice, r.since, nil)
		}
		r.mu.Unlock()
	}()
	for {
		r.mu.Lock()
		notice, since := r.notice, r.since
		if r.pending {
			r.pending = false
		} else {
			notice, since = r.Queue.Take(&r.b, r.lim, r.host)
		}
		if r.b.Len() == 0 {
			idle := r.idleTimer()
			r.mu.Unlock()
			select {
			case <-r.Queue.Notify():
				continue
			case <-idle:
				r.mu.Lock()
				if left, open := r.idler.IdleIn(time.Now()); open && left <= 0 {
					r.idler.CloseIdle()
					// Idle for minutes: nor is a buffer a backlog made big kept.
					r.b.Release()
				}
				r.mu.Unlock()
				continue
			case <-r.stopping:
				// Done once flushed: nothing queued and nothing in flight. Checked
				// under mu so that Offer sees ended from then on.
				r.mu.Lock()
				flushed := !r.pending && r.Queue.Len() == 0
				if flushed {
					r.ended = true
				}
				r.mu.Unlock()
				if flushed {
					return
				}
				continue
			case <-r.ctx.Done():
				return
			}
		}
		n, err := r.drain.Deliver(r.ctx, &r.b)
		if n == 0 && r.handover.Load() && errors.Is(err, ErrUnsent) && r.ctx.Err() != nil {
			// Stopped for a successor before the batch left: it delivers it.
			r.carry = &Carry{b: r.b, notice: notice, since: since}
			r.b = Batch{}
			r.ended = true
			r.mu.Unlock()
			return
		}
		r.account(&r.b, n, notice, since, err)
		failed := n == 0 && err != nil && r.ctx.Err() == nil
		r.b.Reset()
		var wait time.Duration
		if failed {
			wait = r.pause.Next()
		}
		r.mu.Unlock()
		// Nothing got through: the next batch (or the L10 notice that now stands for
		// this one) would meet the same answer. Pause as a data retry would; the
		// queue keeps taking (and counting) messages meanwhile.
		if failed && !backoff.Sleep(r.ctx, wait) {
			return
		}
		if r.ctx.Err() != nil {
			return
		}
	}
}

// loopConcurrent is loop for a Concurrent drain: up to n batches in flight, each in
// its own goroutine (started only while the queue has more than one batch's worth,
// so an idle drain costs one parked goroutine, as with loop). Batches are taken in
// queue order; each is accounted on its own when it completes. After a batch of
// which nothing got through, no new batch starts until the failure pause is over;
// batches already in flight finish. Handed over (detached), it takes nothing more
// from the queue, says so (quiet) and returns when its batches in flight are done.
func (r *Runner) loopConcurrent(n int) {
	defer close(r.done)
	f := newFlights(r, n)
	defer func() {
		f.wg.Wait() // after a handover: until they complete, or Stop's grace is over
		r.mu.Lock()
		r.ended = true
		r.mu.Unlock()
	}()
	if r.mu.Lock(); r.pending {
		// A batch handed over by the drain's previous runner (RunnerOptions.Carry)
		// goes before the queue: the first in flight (r.b is not used otherwise by
		// a concurrent runner: Offer only queues).
		r.pending = false
		f.start(&r.b, r.notice, r.since, false)
	}
	r.mu.Unlock()
	notify := r.Queue.Notify()
	for {
		// Start batches while there are free slots and queued messages.
		// An L10 notice alone is work too: it goes out after a failure's pause even
		// when nothing new is queued, as in loop.
		//
		// A second request starts only for a backlog (a quarter batch queued) while
		// the drain is delivering: at a light load, or while a batch is being
		// retried, one request at a time, as before, and no extra connections.
		//
		// Once handed over, nothing more is taken: the queue is the successor's. (A
		// batch taken just before Handover set the flag is one more in flight here;
		// Handover waits for quiet, so the successor takes only what comes after.)
		for (f.inFlight == 0 || r.Queue.Len() >= r.lim.Messages/4 && r.Stats.delivering(time.Now())) &&
			f.inFlight < n && r.Queue.hasWork() && r.ctx.Err() == nil && !r.handover.Load() {
			b := <-f.free
			notice, since := r.Queue.Take(b, r.lim, r.host)
			if b.Len() == 0 {
				f.free <- b
				break
			}
			f.start(b, notice, since, true)
		}
		select {
		case <-notify:
		case <-f.finished:
			f.inFlight--
		case <-f.failed:
			// Nothing got through: pause as loop does; what is in flight completes
			// meanwhile (its tokens wait in finished).
			if !r.failurePause() {
				return
			}
			// Batches that failed alongside this one are covered by the same pause.
			for len(f.failed) > 0 {
				<-f.failed
			}
		case <-r.detached:
			// The successor has the queue; what is in flight completes (the deferred
			// wait).
			close(r.quiet)
			return
		case <-r.stopping:
			if f.inFlight == 0 && r.Queue.Len() == 0 {
				return
			}
			// Flushing: keep going; finished and notify move the loop on.
			select {
			case <-f.finished:
				f.inFlight--
			case <-r.ctx.Done():
				return
			}
		case <-r.ctx.Done():
			return
		}
	}
}

// flights are a concurrent runner's batches in flight (loopConcurrent).
type flights struct {
	r        *Runner
	free     chan *Batch   // batches not in flight
	failed   chan struct{} // a token per batch of which nothing got through
	finished chan struct{} // a token per completed batch
	inFlight int           // the loop goroutine's
	wg       sync.WaitGroup
}

func newFlights(r *Runner, n int) *flights {
	f := &flights{r: r, free: make(chan *Batch, n), failed: make(chan struct{}, n), finished: make(chan struct{}, n)}
	for range n {
		b := new(Batch)
		if r.usesOrigin {
			b.KeepOrigins()
		}
		f.free <- b
	}
	return f
}

// start delivers b in its own goroutine and accounts it; a pooled batch (one of
// free) goes back to free after.
func (f *flights) start(b *Batch, notice int64, since time.Time, pooled bool) {
	f.inFlight++
	r := f.r
	f.wg.Go(func() {
		nd, err := r.drain.Deliver(r.ctx, b)
		r.mu.Lock()
		r.account(b, nd, notice, since, err)
		r.mu.Unlock()
		if nd == 0 && err != nil && r.ctx.Err() == nil {
			f.failed <- struct{}{}
		}
		b.Reset()
		if pooled {
			f.free <- b
		}
		f.finished <- struct{}{}
	})
}

// failurePause waits out the pause after a batch of which nothing got through. A
// handover ends it early (the runner starts nothing more then); it reports false
// when the runner's ctx ended.
func (r *Runner) failurePause() bool {
	r.mu.Lock()
	wait := r.pause.Next()
	r.mu.Unlock()
	pause := time.NewTimer(wait)
	defer pause.Stop()
	select {
	case <-pause.C:
	case <-r.detached:
	case <-r.ctx.Done():
		return false
	}
	return true
}

// idleTimer arms the runner's timer for when the drain's open connection is due to
// close as idle, and returns its channel (nil: no connection, nothing to wait for).
// Called with mu held.
func (r *Runner) idleTimer() <-chan time.Time {
	if r.idler == nil {
		return nil
	}
	left, open := r.idler.IdleIn(time.Now())
	if !open {
		return nil
	}
	left = max(left, 0)
	if r.idle == nil {
		r.idle = time.NewTimer(left)
	} else {
		r.idle.Reset(left)
	}
	return r.idle.C
}

// account books the outcome of a batch of which the first n frames reached the
// destination.
func (r *Runner) account(b *Batch, n int, notice int64, since time.Time, err error) {
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
	if n > 0 {
		r.pause.Reset()
		r.failLog.Succeeded(r.log, "drain delivering again")
	}
	if real > 0 {
		if r.fwd {
			r.Stats.Forwarded.Add(int64(real))
		} else {
			r.Stats.Delivered.Add(int64(real))
		}
		r.Stats.Batches.Add(1)
		r.Stats.success(now)
		if r.observe != nil && b.Enqueued > 0 && !r.fwd {
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
	// Frames of earlier batches, counted delivered then, that the drain now knows
	// never arrived: announced again with the next batch (Delivered stays a
	// counter of what was written).
	if b.LostEarlier > 0 {
		r.Queue.Dropped(int64(b.LostEarlier))
	}
	if b.LostNotices > 0 {
		r.Queue.restoreNotice(b.LostNotices, now)
	}
	b.LostEarlier, b.LostNotices = 0, 0
	// Drains report each failed attempt through Env.Report as it happens; here the
	// outcome is only logged, at most once a minute per failure streak.
	if err != nil && !errors.Is(err, context.Canceled) {
		r.failLog.Failed(r.log, "drain delivery failed", "delivered", real, "lost", lost, "err", err)
	}
}

// Handover stops the runner for a successor on the same queue (a drain that
// changes between delivering and forwarding, router --drain-owners): delivery in
// flight is cut short at once, and the batch it was for is returned when none of
// it had been sent (the drain said ErrUnsent), for the successor to deliver
// (RunnerOptions.Carry); a batch whose sending had begun is counted as dropped, as
// Stop does, so that no line can be delivered twice.
//
// A Concurrent drain's batches (HTTP, OTLP: requests that may complete in any order)
// are not cut: Handover returns as soon as the runner takes nothing more from the
// queue, with no carry, and the batches in flight complete and are accounted as
// they would have been (delivered, or dropped and announced by the successor's
// L10). The caller then stops the runner (Stop, keeping the queue) with the grace
// it allows them; the drain is closed when they are done.
func (r *Runner) Handover() *Carry {
	r.handover.Store(true)
	if r.concurrent {
		r.detachOnce.Do(func() { close(r.detached) })
		select {
		case <-r.quiet:
		case <-r.done:
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Stop(ctx, true)
	return r.carry // written by the runner goroutine before done
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
	r.closeOnce.Do(func() {
		if err := r.drain.Close(); err != nil {
			r.log.Debug("close drain", "err", err)
		}
	})
}
