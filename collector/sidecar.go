package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubeplex/kubeplex/collector/cri"
	"github.com/kubeplex/kubeplex/collector/queue"
	"github.com/kubeplex/kubeplex/collector/relay"
	"github.com/kubeplex/kubeplex/collector/ship"
	"github.com/kubeplex/kubeplex/collector/trace"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// ModeCRITail is the KUBEPLEX_MODE value that makes the sidecar tail CRI log files.
const ModeCRITail = "CRITail"

// SidecarOptions configure `collector sidecar`.
type SidecarOptions struct {
	Ship     ShipOptions
	Process  string
	Hostname string
	// Socket is where wrappers connect ("" = none): one socket for every wrapper, for
	// collectors run by hand.
	Socket string
	// StateRoot holds one state directory per wrapped container (Containers, when Mode
	// is not CRITail), each with that container's own socket: in a pod (the webhook's
	// layout) a container reaches only its own socket.
	StateRoot string
	// Trace endpoints ("" = off).
	TraceSyslogAddr, TraceHTTPAddr string
	// TraceOTLPAddr serves OTLP/HTTP logs ("" = off).
	TraceOTLPAddr string
	// CRI tail mode: the pod's log directory is <PodLogDir>/<ns>_<name>_<uid>/.
	Mode       string
	PodLogDir  string
	Namespace  string
	PodName    string
	PodUID     string
	Containers []string
	// ContainerProcess names the process of a tailed container.
	ContainerProcess func(container string) string
	// StateDir keeps the CRI read offsets across sidecar restarts.
	StateDir     string
	FlushTimeout time.Duration
	Log          *slog.Logger
}

// Sidecar serves until ctx ends (SIGTERM: the pod is stopping and the workers have
// exited), then stops taking input and flushes within FlushTimeout.
func Sidecar(ctx context.Context, opts SidecarOptions) error {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	if opts.Ship.RouterURL == "" {
		return errors.New("sidecar: no router URL (KUBEPLEX_ROUTER_URL or --router-url)")
	}
	q := newQueue(opts.Ship)
	prod := &queue.Producer{Queue: q, Hostname: opts.Hostname, Proc: opts.Process}

	var state *cri.State
	var tailers []*cri.Tailer
	if opts.Mode == ModeCRITail {
		var err error
		if state, tailers, err = criTailers(opts, q, log); err != nil {
			return err
		}
	} else if opts.Mode != "" {
		return fmt.Errorf("sidecar: unknown mode %q (want %q or empty)", opts.Mode, ModeCRITail)
	}

	so, err := shipOptions(opts.Ship, opts.Hostname, opts.Process, log)
	if err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	so.AfterBatch = func() {
		if state != nil {
			if err := state.Save(); err != nil {
				log.Error("save tail positions", "error", err)
			}
		}
	}
	sh := ship.New(q, so)

	var srvs []*relay.Server
	closeAll := func(ctx context.Context) {
		for _, srv := range srvs {
			srv.Close(ctx)
		}
	}
	for _, path := range socketPaths(opts) {
		srv := &relay.Server{Queue: q, Log: log}
		if err := srv.Listen(path); err != nil {
			closeAll(context.Background())
			return fmt.Errorf("sidecar: %w", err)
		}
		srvs = append(srvs, srv)
		go srv.Serve()
	}
	tr, err := trace.Listen(trace.Options{
		SyslogAddr: opts.TraceSyslogAddr, HTTPAddr: opts.TraceHTTPAddr, OTLPAddr: opts.TraceOTLPAddr, Log: log,
		Line: func(pri uint8, t time.Time, sd, text []byte) { prod.LineSD(pri, t, sd, text) },
	})
	if err != nil {
		closeAll(context.Background())
		return fmt.Errorf("sidecar: %w", err)
	}
	tr.Serve()
	otlpOff(tr, prod, log)
	log.Info("collector sidecar started", "process", opts.Process, "sockets", len(srvs),
		"trace_syslog", tr.SyslogAddr(), "trace_http", tr.HTTPAddr(), "trace_otlp", tr.OTLPAddr(), "mode", opts.Mode, "tailed", len(tailers),
		"token_file", opts.Ship.TokenFile)

	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	defer stopShip()
	shipped := make(chan struct{})
	go func() { defer close(shipped); _ = sh.Run(shipCtx) }()

	tailCtx, stopTail := context.WithCancel(context.WithoutCancel(ctx))
	defer stopTail()
	stopTailing := make(chan struct{})
	var tailing sync.WaitGroup
	for _, t := range tailers {
		tailing.Add(1)
		go func() {
			defer tailing.Done()
			if err := t.Run(tailCtx, stopTailing); err != nil && tailCtx.Err() == nil {
				log.Error("tail container log", "dir", t.Dir, "error", err)
			}
		}()
	}

	<-ctx.Done()
	deadline := time.Now().Add(opts.FlushTimeout)
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	// Wrappers have exited before a native sidecar is told to stop; give a late one a
	// moment to finish its last write, then stop listening.
	if len(srvs) > 0 {
		sctx, scancel := context.WithTimeout(fctx, min(time.Second, opts.FlushTimeout/4))
		closeAll(sctx)
		scancel()
	}
	tr.Close()
	// Tailers read their files to the end once more, then stop.
	close(stopTailing)
	tailed := make(chan struct{})
	go func() { tailing.Wait(); close(tailed) }()
	select {
	case <-tailed:
	case <-fctx.Done():
		stopTail()
		<-tailed
	}
	stopShip()
	<-shipped
	if left := sh.Flush(fctx); left > 0 {
		log.Warn("lines not delivered before the flush timeout", "lines", left)
	}
	if state != nil {
		if err := state.Save(); err != nil {
			log.Error("save tail positions", "error", err)
		}
	}
	log.Info("collector sidecar stopped", "process", opts.Process)
	return nil
}

// SocketName is the socket's file name in each wrapped container's state directory.
const SocketName = "collector.sock"

func socketPaths(opts SidecarOptions) []string {
	var paths []string
	if opts.Socket != "" {
		paths = append(paths, opts.Socket)
	}
	if opts.StateRoot != "" && opts.Mode != ModeCRITail {
		for _, c := range opts.Containers {
			paths = append(paths, filepath.Join(opts.StateRoot, c, SocketName))
		}
	}
	return paths
}

// criTailers prepares one tailer per container, resuming from saved positions.
func criTailers(opts SidecarOptions, q *queue.Queue, log *slog.Logger) (*cri.State, []*cri.Tailer, error) {
	if opts.Namespace == "" || opts.PodName == "" || opts.PodUID == "" || len(opts.Containers) == 0 {
		return nil, nil, errors.New("sidecar: CRI tail mode needs KUBEPLEX_POD_NAMESPACE, KUBEPLEX_POD_NAME, " +
			"KUBEPLEX_POD_UID and KUBEPLEX_CONTAINERS")
	}
	if opts.StateDir == "" {
		return nil, nil, errors.New("sidecar: CRI tail mode needs a state directory (KUBEPLEX_STATE_DIR or the socket's directory)")
	}
	podDir := filepath.Join(opts.PodLogDir, opts.Namespace+"_"+opts.PodName+"_"+opts.PodUID)
	state := &cri.State{Path: filepath.Join(opts.StateDir, "cri-positions.json")}
	saved, err := state.Load()
	if err != nil {
		// A torn or foreign file: start over rather than not at all.
		log.Warn("ignore tail positions", "error", err)
		saved = map[string]cri.Position{}
	}
	var tailers []*cri.Tailer
	for _, c := range opts.Containers {
		p := &queue.Producer{Queue: q, Hostname: opts.Hostname, Proc: opts.ContainerProcess(c)}
		t := &cri.Tailer{
			Dir: filepath.Join(podDir, c), Start: saved[c], Log: log,
			Push: func(ctx context.Context, stderr bool, ts time.Time, text []byte, commit func()) error {
				pri := wire.PriorityInfo
				if stderr {
					pri = wire.PriorityError
				}
				// The file is the buffer: wait for room rather than drop.
				return q.PushWait(ctx, queue.Entry{Record: p.Record(queue.SourceApp, pri, ts, text), Commit: commit})
			},
		}
		state.Track(c, t)
		tailers = append(tailers, t)
	}
	return state, tailers, nil
}
