package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/collector/ship"
	"github.com/kubeplex/kubeplex/collector/wrap"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// RunOptions configure `collector run`.
type RunOptions struct {
	Args []string
	Ship ShipOptions
	// Process is the worker's process name (procname.Env.Name).
	Process  string
	Hostname string
	// FlushTimeout bounds the flush after the child has exited.
	FlushTimeout time.Duration
	Log          *slog.Logger
}

// ShipOptions are shared by run (direct mode) and sidecar.
type ShipOptions struct {
	RouterURL string
	Token     string
	Gzip      bool
	// QueueLines and QueueBytes bound the in-memory queue.
	QueueLines, QueueBytes int
	// Attempts per batch and the cap of the backoff between them.
	Attempts   int
	BackoffMax time.Duration
}

// forwarded are the signals passed on to the child: everything a supervisor or a
// terminal sends to ask a process to stop, reload or dump.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT,
}

// Run runs the worker under the collector until it exits and the last lines are
// flushed, and returns how the worker ended. ctx cancellation is not a stop signal:
// stopping is the child's decision, prompted by forwarded signals.
func Run(ctx context.Context, opts RunOptions) (wrap.Exit, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	if opts.Ship.RouterURL == "" {
		return wrap.Exit{}, errors.New("run: no router URL (KUBEPLEX_ROUTER_URL or --router-url)")
	}
	q := newQueue(opts.Ship)
	prod := &queue.Producer{Queue: q, Hostname: opts.Hostname, Proc: opts.Process}
	sh := ship.New(q, ship.Options{
		URL: opts.Ship.RouterURL, Token: opts.Ship.Token, Gzip: opts.Ship.Gzip,
		Attempts: opts.Ship.Attempts, BackoffMax: opts.Ship.BackoffMax,
		Hostname: opts.Hostname, Proc: opts.Process, Log: log,
	})
	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	shipped := make(chan struct{})
	go func() { defer close(shipped); _ = sh.Run(shipCtx) }()

	exit := supervise(opts.Args, prod, log)

	stopShip()
	<-shipped
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.FlushTimeout)
	defer cancel()
	if left := sh.Flush(fctx); left > 0 {
		log.Warn("lines not delivered before the flush timeout", "lines", left)
	}
	return exit, nil
}

func newQueue(o ShipOptions) *queue.Queue {
	if o.QueueLines <= 0 {
		o.QueueLines = 10000
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 4 << 20
	}
	return queue.New(o.QueueLines, o.QueueBytes)
}

// supervise starts the child, forwards signals to it, reports its lifecycle as
// kubeplex events and waits for it.
func supervise(args []string, prod *queue.Producer, log *slog.Logger) wrap.Exit {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	child, err := wrap.Start(wrap.Options{
		Args:   args,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Line: func(s wrap.Stream, t time.Time, line []byte) {
			pri := wire.PriorityInfo
			if s == wrap.Stderr {
				pri = wire.PriorityError
			}
			prod.Line(pri, t, line)
		},
	})
	if err != nil {
		prod.Event(wire.PriorityError, fmt.Sprintf("Process failed to start: %v", err))
		log.Error("start worker", "error", err)
		// 127 is what a shell answers for a command it cannot run.
		return wrap.Exit{Code: 127}
	}
	prod.Event(wire.PriorityInfo, fmt.Sprintf("Starting process with command `%s` (pid %d)", wrap.Command(args), child.Pid))

	done := make(chan wrap.Exit, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGWINCH || sig == syscall.SIGCONT {
				_ = child.Signal(sig)
				continue
			}
			prod.Event(wire.PriorityInfo, "Stopping process with "+wrap.SignalName(sig.(syscall.Signal)))
			if err := child.Signal(sig); err != nil {
				log.Debug("forward signal", "signal", sig, "error", err)
			}
		case e := <-done:
			prod.Event(exitPriority(e), wrap.ExitText(e))
			return e
		}
	}
}

func exitPriority(e wrap.Exit) uint8 {
	if e.Code == 0 {
		return wire.PriorityInfo
	}
	return wire.PriorityError
}
