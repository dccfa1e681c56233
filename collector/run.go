package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector/metrics"
	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/collector/relay"
	"github.com/kubeplex/kubeplex/collector/ship"
	"github.com/kubeplex/kubeplex/collector/token"
	"github.com/kubeplex/kubeplex/collector/trace"
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
	// Socket, when set, hands lines to the sidecar instead of shipping directly.
	Socket string
	// StateDir keeps the run count across container restarts ("" = not tracked).
	StateDir string
	// Trace endpoints served in direct mode ("" = off; the sidecar serves them in a pod).
	TraceSyslogAddr, TraceHTTPAddr string
	// TraceOTLPAddr serves OTLP/HTTP logs ("" = off).
	TraceOTLPAddr string
	// FlushTimeout bounds the flush after the child has exited.
	FlushTimeout time.Duration
	// SidecarWait bounds the wait for the sidecar's socket before the worker starts
	// (a native sidecar is started first, but may not be listening yet) [5s].
	SidecarWait time.Duration
	// RuntimeMetrics, when positive, is how often the container's cgroup is read and
	// written as a log-runtime-metrics line (kubeplex[<process>]); CgroupRoot is
	// where the cgroup filesystem is (tests give a fixture tree).
	RuntimeMetrics time.Duration
	CgroupRoot     string
	Log            *slog.Logger
}

// ShipOptions are shared by run (direct mode) and sidecar.
type ShipOptions struct {
	RouterURL string
	// Token is a fixed ingest token; TokenFile, when set, is read instead and
	// re-read every TokenRefresh (0: token.DefaultInterval) and after a 401, so a
	// rotated token in a Secret volume is picked up without a restart.
	Token        string
	TokenFile    string
	TokenRefresh time.Duration
	Gzip         bool
	// QueueLines and QueueBytes bound the in-memory queue.
	QueueLines, QueueBytes int
	// Attempts per batch and the cap of the backoff between them.
	Attempts   int
	BackoffMax time.Duration
	// Pod and Node are where the collector runs (KUBEPLEX_POD_NAME and
	// KUBEPLEX_NODE_NAME), sent once per POST; empty when unknown.
	Pod, Node string
}

// forwarded are the signals passed on to the child: everything a supervisor or a
// terminal sends to ask a process to stop, reload or dump.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT,
}

// outlet takes lines out of the queue: the shipper (direct mode) or the relay client.
type outlet interface {
	Run(ctx context.Context)
	Flush(ctx context.Context) (left int)
}

type shipOutlet struct{ *ship.Shipper }

func (s shipOutlet) Run(ctx context.Context) { _ = s.Shipper.Run(ctx) }

// Run runs the worker under the collector until it exits and the last lines are
// flushed, and returns how the worker ended. Stopping is the child's decision,
// prompted by the signals forwarded to it; ctx only carries values.
func Run(ctx context.Context, opts RunOptions) (wrap.Exit, error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	if opts.Socket == "" && opts.Ship.RouterURL == "" {
		return wrap.Exit{}, errors.New("run: no router URL (KUBEPLEX_ROUTER_URL or --router-url) and no sidecar socket")
	}
	q := newQueue(opts.Ship)
	prod := &queue.Producer{Queue: q, Hostname: opts.Hostname, Proc: opts.Process}
	var out outlet
	if opts.Socket != "" {
		rc := &relay.Client{Path: opts.Socket, Queue: q, Hostname: opts.Hostname, Proc: opts.Process, Log: log}
		// Hold the socket's trusted connection before the worker can open one.
		if opts.SidecarWait <= 0 {
			opts.SidecarWait = 5 * time.Second
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.SidecarWait)
		if err := rc.Connect(cctx); err != nil {
			log.Warn("sidecar not reachable; the worker starts anyway", "error", err)
		}
		cancel()
		out = rc
	} else {
		so, err := shipOptions(opts.Ship, opts.Hostname, opts.Process, log)
		if err != nil {
			return wrap.Exit{}, fmt.Errorf("run: %w", err)
		}
		out = shipOutlet{ship.New(q, so)}
	}
	outCtx, stopOut := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOut()
	outDone := make(chan struct{})
	go func() { defer close(outDone); out.Run(outCtx) }()

	var tr *trace.Server
	if opts.Socket == "" && (opts.TraceSyslogAddr != "" || opts.TraceHTTPAddr != "" || opts.TraceOTLPAddr != "") {
		var err error
		tr, err = trace.Listen(trace.Options{
			SyslogAddr: opts.TraceSyslogAddr, HTTPAddr: opts.TraceHTTPAddr, OTLPAddr: opts.TraceOTLPAddr, Log: log,
			Line: func(pri uint8, t time.Time, sd, text []byte) { prod.LineSD(pri, t, sd, text) },
		})
		if err != nil {
			log.Error("trace endpoints off", "error", err)
		} else {
			tr.Serve()
			otlpOff(tr, prod, log)
		}
	}

	exit := supervise(opts, prod, log)

	if tr != nil {
		tr.Close()
	}
	stopOut()
	<-outDone
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.FlushTimeout)
	defer cancel()
	if left := out.Flush(fctx); left > 0 {
		log.Warn("lines not delivered before the flush timeout", "lines", left)
	}
	return exit, nil
}

// otlpOff tells the collector's log and the app's stream that the OTLP/HTTP input
// could not bind, so that an app whose SDK exports to 4318 learns why nothing arrives
// while every other input works.
func otlpOff(tr *trace.Server, prod *queue.Producer, log *slog.Logger) {
	if err := tr.OTLPError(); err != nil {
		log.Error("OTLP/HTTP logs input off", "error", err)
		prod.Event(wire.PriorityWarning, err.Error())
	}
}

// shipOptions turns the shared options into the shipper's, opening the token file
// when one is named.
func shipOptions(o ShipOptions, hostname, process string, log *slog.Logger) (ship.Options, error) {
	so := ship.Options{
		URL: o.RouterURL, Token: o.Token, Gzip: o.Gzip,
		Attempts: o.Attempts, BackoffMax: o.BackoffMax,
		Hostname: hostname, Proc: process, Log: log, Pod: o.Pod, Node: o.Node,
	}
	if o.TokenFile != "" {
		f, err := token.Open(o.TokenFile, o.TokenRefresh)
		if err != nil {
			return so, err
		}
		so.Tokens = f
	}
	return so, nil
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
func supervise(opts RunOptions, prod *queue.Producer, log *slog.Logger) wrap.Exit {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	runs := runState{path: statePath(opts.StateDir, opts.Process), warn: func(text string) {
		prod.Warning(queue.MsgIDStateError, text)
		log.Warn("process state not kept", "path", statePath(opts.StateDir, opts.Process), "detail", text)
	}}
	if msg := runs.start(); msg != "" {
		prod.Event(wire.PriorityInfo, msg)
	}
	oomBefore, oomKnown := wrap.OOMKills()
	child, err := wrap.Start(wrap.Options{
		Args:   opts.Args,
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
		msg := fmt.Sprintf("Process failed to start: %v", err)
		prod.Event(wire.PriorityError, msg)
		runs.exit(msg)
		log.Error("start worker", "error", err)
		// 127 is what a shell answers for a command it cannot run.
		return wrap.Exit{Code: 127}
	}
	prod.Event(wire.PriorityInfo, fmt.Sprintf("Starting process with command `%s` (pid %d)", wrap.Command(opts.Args), child.Pid))

	done := make(chan wrap.Exit, 1)
	go func() { done <- child.Wait() }()
	if opts.RuntimeMetrics > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go runtimeMetrics(opts, prod, log, stop)
	}
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
			msg := wrap.ExitText(e)
			if e.Signal == syscall.SIGKILL && oomKnown {
				if after, ok := wrap.OOMKills(); ok && after > oomBefore {
					msg += " (out of memory: the container's OOM killer fired)"
				}
			}
			pri := wire.PriorityInfo
			if e.Code != 0 {
				pri = wire.PriorityError
			}
			prod.Event(pri, msg)
			runs.exit(msg)
			return e
		}
	}
}

func statePath(dir, process string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, "run-"+filepath.Base(process)+".json")
}

// runState remembers, in the container's state directory, how often this process has
// been started and how its last run ended: the kubelet restarts the container, not
// the collector, so only a file that outlives the container can tell a restart.
// A state that cannot be read or written is reported once, as a warning in the
// stream (MSGID state-error, counted by the router), never silently.
type runState struct {
	path   string
	warn   func(text string)
	warned bool
	st     struct {
		Starts   int    `json:"starts"`
		Running  bool   `json:"running"`
		LastExit string `json:"lastExit,omitempty"`
	}
}

// start records a start and returns the restart event, if this is one.
func (r *runState) start() string {
	if r.path == "" {
		return ""
	}
	b, err := os.ReadFile(r.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &r.st); err != nil {
			r.fail(fmt.Errorf("decode %s: %w", r.path, err))
			r.st.Starts, r.st.Running, r.st.LastExit = 0, false, ""
		}
	case !errors.Is(err, os.ErrNotExist):
		r.fail(err)
	}
	msg := ""
	if r.st.Starts > 0 {
		prev := r.st.LastExit
		if r.st.Running || prev == "" {
			prev = "ended without an exit report (the container was killed)"
		}
		msg = fmt.Sprintf("Process restarted (start %d); the previous run %s", r.st.Starts+1, lowerFirst(prev))
	}
	r.st.Starts++
	r.st.Running = true
	r.save()
	return msg
}

func (r *runState) exit(msg string) {
	if r.path == "" {
		return
	}
	r.st.Running = false
	r.st.LastExit = msg
	r.save()
}

func (r *runState) save() {
	b, err := json.Marshal(r.st)
	if err == nil {
		tmp := r.path + ".tmp"
		if err = os.WriteFile(tmp, b, 0o666); err == nil {
			err = os.Rename(tmp, r.path)
		}
	}
	if err != nil {
		r.fail(err)
	}
}

func (r *runState) fail(err error) {
	if r.warned || r.warn == nil {
		return
	}
	r.warned = true
	r.warn(fmt.Sprintf("Warning: cannot keep this process's restart count (%v); restarts will not be reported", err))
}

func lowerFirst(s string) string {
	if s != "" && s[0] >= 'A' && s[0] <= 'Z' {
		return string(s[0]+'a'-'A') + s[1:]
	}
	return s
}

// runtimeMetrics writes a log-runtime-metrics line every opts.RuntimeMetrics until
// stop is closed. A cgroup that cannot be read is said once in the stream, then
// retried quietly.
func runtimeMetrics(opts RunOptions, prod *queue.Producer, log *slog.Logger, stop <-chan struct{}) {
	r := metrics.Reader{Root: opts.CgroupRoot}
	var load metrics.Load
	if s, err := r.Read(); err == nil {
		load.Add(time.Now(), s.CPU)
	}
	t := time.NewTicker(opts.RuntimeMetrics)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			s, err := r.Read()
			if err != nil {
				if !warned {
					warned = true
					prod.Event(wire.PriorityWarning, "Warning: runtime metrics unavailable: "+err.Error())
					log.Warn("runtime metrics", "error", err)
				}
				continue
			}
			prod.Event(wire.PriorityInfo, metrics.Line(opts.Process, opts.Hostname, s, load.Add(now, s.CPU)))
		}
	}
}
