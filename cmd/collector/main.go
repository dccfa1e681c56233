// Command collector is kubeplex's per-pod log collector. See docs/collector.md.
//
//	collector run [flags] -- CMD ARGS…   run CMD, capture its output and lifecycle
//	collector sidecar [flags]            batch and ship, trace listeners, CRI tail
//	collector install DEST               copy this binary to DEST (init container)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector"
	"github.com/kubeplex/kubeplex/collector/procname"
)

const usage = `usage:
  collector run [flags] -- CMD [ARGS...]
  collector sidecar [flags]
  collector install DEST [STATE-DIR...]
`

// The subcommands.
const (
	cmdRun     = "run"
	cmdSidecar = "sidecar"
	cmdInstall = "install"
)

type options struct {
	command   string
	args      []string
	install   string
	stateDirs []string

	ship         collector.ShipOptions
	process      string
	hostname     string
	socket       string
	stateDir     string
	stateRoot    string
	traceSyslog  string
	traceHTTP    string
	flushTimeout time.Duration
	sidecarWait  time.Duration
	logLevel     string

	// CRI tail mode (sidecar).
	mode             string
	podLogDir        string
	namespace        string
	podName          string
	podUID           string
	containers       []string
	containerProcess func(string) string
}

func main() {
	// One P is plenty for a per-pod agent and spares the worker's cores the
	// scheduler's spinning (idle Ps polling for work after every wake-up), which was
	// most of the collector's CPU at 10,000 lines/s (docs/benchmarks.md).
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	opts, err := parse(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "collector: %v\n%s", err, usage)
		os.Exit(2)
	}
	err = run(context.Background(), opts)
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		ee.exit()
	case err != nil:
		fmt.Fprintf(os.Stderr, "collector: %v\n", err)
		os.Exit(1)
	}
}

func parse(argv []string, getenv func(string) string) (options, error) {
	var o options
	if len(argv) == 0 {
		return o, errors.New("no command")
	}
	o.command = argv[0]
	fs := flag.NewFlagSet("collector "+o.command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.ship.RouterURL, "router-url", getenv("KUBEPLEX_ROUTER_URL"), "router ingest URL (env KUBEPLEX_ROUTER_URL)")
	fs.StringVar(&o.process, "process", "", "process name (default: from KUBEPLEX_PROCESS, KUBEPLEX_PROCESS_TYPE, the pod)")
	fs.StringVar(&o.socket, "socket", getenv("KUBEPLEX_SOCKET"), "sidecar unix socket (env KUBEPLEX_SOCKET)")
	fs.StringVar(&o.stateRoot, "state-root", getenv("KUBEPLEX_STATE_ROOT"), "sidecar: the workers' state directories, one per container in KUBEPLEX_CONTAINERS, each with its socket (env KUBEPLEX_STATE_ROOT)")
	fs.StringVar(&o.stateDir, "state-dir", getenv("KUBEPLEX_STATE_DIR"), "directory for restart counts and CRI offsets (env KUBEPLEX_STATE_DIR; default: the socket's directory)")
	traceSyslogDef, traceHTTPDef := "", ""
	if argv[0] == cmdSidecar {
		traceSyslogDef, traceHTTPDef = "127.0.0.1:5140", "127.0.0.1:5141"
	}
	fs.StringVar(&o.traceSyslog, "trace-syslog-addr", envOr(getenv, "KUBEPLEX_TRACE_SYSLOG_ADDR", traceSyslogDef), "loopback address for syslog trace input, UDP and TCP; empty = off (env KUBEPLEX_TRACE_SYSLOG_ADDR)")
	fs.StringVar(&o.traceHTTP, "trace-http-addr", envOr(getenv, "KUBEPLEX_TRACE_HTTP_ADDR", traceHTTPDef), "loopback address for POST /trace; empty = off (env KUBEPLEX_TRACE_HTTP_ADDR)")
	fs.StringVar(&o.mode, "mode", getenv("KUBEPLEX_MODE"), "sidecar mode: empty or CRITail (env KUBEPLEX_MODE)")
	fs.StringVar(&o.podLogDir, "pod-log-dir", orDefault(getenv("KUBEPLEX_POD_LOG_DIR"), "/var/log/pods"), "kubelet pod log root for CRI tail mode (env KUBEPLEX_POD_LOG_DIR)")
	fs.StringVar(&o.ship.TokenFile, "token-file", getenv("KUBEPLEX_TOKEN_FILE"), "file holding the ingest token, re-read when it changes and after a 401; wins over KUBEPLEX_TOKEN (env KUBEPLEX_TOKEN_FILE)")
	fs.DurationVar(&o.ship.TokenRefresh, "token-refresh", envDuration(getenv("KUBEPLEX_TOKEN_REFRESH"), 30*time.Second), "how often to check the token file for a new token (env KUBEPLEX_TOKEN_REFRESH)")
	fs.BoolVar(&o.ship.Gzip, "gzip", envBool(getenv("KUBEPLEX_GZIP")), "gzip batches (env KUBEPLEX_GZIP)")
	fs.IntVar(&o.ship.QueueLines, "queue-lines", envInt(getenv("KUBEPLEX_QUEUE_LINES"), 10000), "queue bound in lines (env KUBEPLEX_QUEUE_LINES)")
	fs.IntVar(&o.ship.QueueBytes, "queue-bytes", envInt(getenv("KUBEPLEX_QUEUE_BYTES"), 4<<20), "queue bound in bytes (env KUBEPLEX_QUEUE_BYTES)")
	fs.IntVar(&o.ship.Attempts, "attempts", envInt(getenv("KUBEPLEX_ATTEMPTS"), 5), "POST attempts per batch before its lines count as lost (env KUBEPLEX_ATTEMPTS)")
	fs.DurationVar(&o.ship.BackoffMax, "backoff-max", envDuration(getenv("KUBEPLEX_BACKOFF_MAX"), 4*time.Second), "cap of the retry backoff (env KUBEPLEX_BACKOFF_MAX)")
	fs.DurationVar(&o.flushTimeout, "flush-timeout", envDuration(getenv("KUBEPLEX_FLUSH_TIMEOUT"), 5*time.Second), "how long to flush after the worker exits or on SIGTERM (env KUBEPLEX_FLUSH_TIMEOUT)")
	fs.DurationVar(&o.sidecarWait, "sidecar-wait", envDuration(getenv("KUBEPLEX_SIDECAR_WAIT"), 5*time.Second), "run: how long to wait for the sidecar's socket before starting the worker anyway (env KUBEPLEX_SIDECAR_WAIT)")
	fs.StringVar(&o.logLevel, "log-level", orDefault(getenv("KUBEPLEX_LOG_LEVEL"), "info"), "debug, info, warn or error (env KUBEPLEX_LOG_LEVEL)")
	if err := fs.Parse(argv[1:]); err != nil {
		return o, fmt.Errorf("parse flags: %w", err)
	}
	if o.ship.TokenFile == "" {
		// Outside Kubernetes, and in pods injected before the token moved to a file.
		o.ship.Token = getenv("KUBEPLEX_TOKEN")
	}
	o.args = fs.Args()
	o.namespace = getenv("KUBEPLEX_POD_NAMESPACE")
	o.podName = getenv("KUBEPLEX_POD_NAME")
	o.podUID = getenv("KUBEPLEX_POD_UID")
	for _, c := range strings.Split(getenv("KUBEPLEX_CONTAINERS"), ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.containers = append(o.containers, c)
		}
	}
	if o.stateDir == "" && o.socket != "" {
		o.stateDir = filepath.Dir(o.socket)
	}
	env := procname.FromEnviron(getenv)
	if o.process != "" {
		env.Process = o.process
	}
	// A tailed container is named like a wrapped one when it is alone; beside others,
	// each is <container>.<n> so their lines stay apart.
	o.containerProcess = func(c string) string {
		if len(o.containers) == 1 {
			e := env
			e.Container = c
			return e.Name(c)
		}
		return procname.Env{ProcessType: c, PodIndex: env.PodIndex, PodName: env.PodName}.Name(c)
	}
	o.hostname = getenv("KUBEPLEX_POD_NAME")
	if o.hostname == "" {
		o.hostname, _ = os.Hostname()
	}
	switch o.command {
	case cmdRun:
		if len(o.args) == 0 {
			return o, errors.New("run: no command after --")
		}
		o.process = env.Name(o.args[0])
	case cmdSidecar:
		o.process = env.Name("")
	case cmdInstall:
		if len(o.args) < 1 {
			return o, errors.New("install: want DEST [STATE-DIR...]")
		}
		o.install, o.stateDirs = o.args[0], o.args[1:]
	default:
		return o, fmt.Errorf("unknown command %q", o.command)
	}
	return o, nil
}

func run(ctx context.Context, o options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("parse log level: %w", err)
	}
	// The collector's own logs go to stderr as text; in run mode they interleave with
	// the worker's stderr copy, so they say who they are.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "kubeplex-collector")
	switch o.command {
	case cmdInstall:
		if err := collector.Install(o.install); err != nil {
			return err
		}
		return collector.MakeStateDirs(o.stateDirs)
	case cmdRun:
		exit, err := collector.Run(ctx, collector.RunOptions{
			Args: o.args, Ship: o.ship, Process: o.process, Hostname: o.hostname,
			Socket: o.socket, StateDir: o.stateDir,
			TraceSyslogAddr: o.traceSyslog, TraceHTTPAddr: o.traceHTTP,
			FlushTimeout: o.flushTimeout, SidecarWait: o.sidecarWait, Log: log,
		})
		if err != nil {
			return err
		}
		return &exitError{code: exit.Code, signal: exit.Signal}
	case cmdSidecar:
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return collector.Sidecar(ctx, collector.SidecarOptions{
			Ship: o.ship, Process: o.process, Hostname: o.hostname, Socket: o.socket,
			TraceSyslogAddr: o.traceSyslog, TraceHTTPAddr: o.traceHTTP,
			StateRoot: o.stateRoot,
			Mode:      o.mode, PodLogDir: o.podLogDir, Namespace: o.namespace, PodName: o.podName,
			PodUID: o.podUID, Containers: o.containers, ContainerProcess: o.containerProcess,
			StateDir: o.stateDir, FlushTimeout: o.flushTimeout, Log: log,
		})
	}
	return nil
}

// exitError carries the worker's end to main, which ends the collector the same way.
type exitError struct {
	code   int
	signal syscall.Signal
}

func (e *exitError) Error() string { return "worker exited with status " + strconv.Itoa(e.code) }

// exit ends the collector as the worker ended: with its status, or killed by its
// signal, so a supervisor sees the worker's own death. PID 1 ignores signals it has no
// handler for, so after re-raising the signal we fall back to the shell's 128+n.
func (e *exitError) exit() {
	if e.signal != 0 {
		signal.Reset(e.signal)
		_ = syscall.Kill(os.Getpid(), e.signal)
		time.Sleep(100 * time.Millisecond)
		os.Exit(128 + int(e.signal))
	}
	os.Exit(e.code)
}

func envBool(s string) bool {
	b, _ := strconv.ParseBool(s)
	return b
}

func envInt(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

func envDuration(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}

// envOr returns the variable when it is set, even to "" (which turns a listener off).
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" || isSet(key) {
		return v
	}
	return def
}

func isSet(key string) bool {
	_, ok := os.LookupEnv(key)
	return ok
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
