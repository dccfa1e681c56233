package collector

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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector/procname"
)

// Usage is the collector's command line, for a usage error.
const Usage = `usage:
  collector run [flags] -- CMD [ARGS...]
  collector sidecar [flags]
  collector install DEST [STATE-DIR...]
`

// The subcommands.
const (
	CmdRun     = "run"
	CmdSidecar = "sidecar"
	CmdInstall = "install"
)

// Command is a parsed collector command line: which subcommand, and its options.
type Command struct {
	Name    string
	Run     RunOptions     // CmdRun
	Sidecar SidecarOptions // CmdSidecar
	// Install is where CmdInstall copies the binary; StateDirs are made beside it.
	Install   string
	StateDirs []string
}

// envFlags names the environment variable behind each flag. The webhook configures
// the collector through these (a container's command line belongs to the worker), so
// a set variable is parsed as the flag is, bad values included, and a flag given on
// the command line wins.
var envFlags = []struct{ flag, env string }{
	{"router-url", "KUBEPLEX_ROUTER_URL"},
	{"socket", "KUBEPLEX_SOCKET"},
	{"state-root", "KUBEPLEX_STATE_ROOT"},
	{"state-dir", "KUBEPLEX_STATE_DIR"},
	{"trace-syslog-addr", "KUBEPLEX_TRACE_SYSLOG_ADDR"},
	{"trace-http-addr", "KUBEPLEX_TRACE_HTTP_ADDR"},
	{"trace-otlp-addr", "KUBEPLEX_TRACE_OTLP_ADDR"},
	{"mode", "KUBEPLEX_MODE"},
	{"pod-log-dir", "KUBEPLEX_POD_LOG_DIR"},
	{"token-file", "KUBEPLEX_TOKEN_FILE"},
	{"token-refresh", "KUBEPLEX_TOKEN_REFRESH"},
	{"gzip", "KUBEPLEX_GZIP"},
	{"queue-lines", "KUBEPLEX_QUEUE_LINES"},
	{"queue-bytes", "KUBEPLEX_QUEUE_BYTES"},
	{"attempts", "KUBEPLEX_ATTEMPTS"},
	{"backoff-max", "KUBEPLEX_BACKOFF_MAX"},
	{"flush-timeout", "KUBEPLEX_FLUSH_TIMEOUT"},
	{"sidecar-wait", "KUBEPLEX_SIDECAR_WAIT"},
	{"runtime-metrics", "KUBEPLEX_RUNTIME_METRICS"},
	{"cgroup-root", "KUBEPLEX_CGROUP_ROOT"},
	{"log-level", "KUBEPLEX_LOG_LEVEL"},
}

// emptyMeansOff are the flags whose variable set to "" turns something off; for the
// others an empty variable is as good as unset (a pod spec may carry empty values).
var emptyMeansOff = map[string]bool{"trace-syslog-addr": true, "trace-http-addr": true, "trace-otlp-addr": true}

// commonFlags are the values run and sidecar share before they are sorted into
// RunOptions and SidecarOptions.
type commonFlags struct {
	ship                   ShipOptions
	process, socket        string
	stateDir, stateRoot    string
	traceSyslog, traceHTTP string
	traceOTLP              string
	mode, podLogDir        string
	flushTimeout           time.Duration
	sidecarWait            time.Duration
	runtimeMetrics         time.Duration
	cgroupRoot             string
	logLevel               slog.Level
}

func (o *commonFlags) bind(fs *flag.FlagSet, command string) {
	traceSyslogDef, traceHTTPDef, traceOTLPDef := "", "", ""
	if command == CmdSidecar {
		// 4318 is OTLP/HTTP's own port: an app's OpenTelemetry SDK exports logs there
		// (http://localhost:4318/v1/logs) unless told otherwise.
		traceSyslogDef, traceHTTPDef, traceOTLPDef = "127.0.0.1:5140", "127.0.0.1:5141", "127.0.0.1:4318"
	}
	fs.StringVar(&o.ship.RouterURL, "router-url", "", "router ingest URL (env KUBEPLEX_ROUTER_URL)")
	fs.StringVar(&o.process, "process", "", "process name (default: from KUBEPLEX_PROCESS, KUBEPLEX_PROCESS_TYPE, the pod)")
	fs.StringVar(&o.socket, "socket", "", "sidecar unix socket (env KUBEPLEX_SOCKET)")
	fs.StringVar(&o.stateRoot, "state-root", "", "sidecar: the workers' state directories, one per container in KUBEPLEX_CONTAINERS, each with its socket (env KUBEPLEX_STATE_ROOT)")
	fs.StringVar(&o.stateDir, "state-dir", "", "directory for restart counts and CRI offsets (env KUBEPLEX_STATE_DIR; default: the socket's directory)")
	fs.StringVar(&o.traceSyslog, "trace-syslog-addr", traceSyslogDef, "loopback address for syslog trace input, UDP and TCP; empty = off (env KUBEPLEX_TRACE_SYSLOG_ADDR)")
	fs.StringVar(&o.traceHTTP, "trace-http-addr", traceHTTPDef, "loopback address for POST /trace; empty = off (env KUBEPLEX_TRACE_HTTP_ADDR)")
	fs.StringVar(&o.traceOTLP, "trace-otlp-addr", traceOTLPDef, "loopback address for OTLP/HTTP logs (POST /v1/logs); empty = off (env KUBEPLEX_TRACE_OTLP_ADDR)")
	fs.StringVar(&o.mode, "mode", "", "sidecar mode: empty or CRITail (env KUBEPLEX_MODE)")
	fs.StringVar(&o.podLogDir, "pod-log-dir", "/var/log/pods", "kubelet pod log root for CRI tail mode (env KUBEPLEX_POD_LOG_DIR)")
	fs.StringVar(&o.ship.TokenFile, "token-file", "", "file holding the ingest token, re-read when it changes and after a 401; wins over KUBEPLEX_TOKEN (env KUBEPLEX_TOKEN_FILE)")
	fs.DurationVar(&o.ship.TokenRefresh, "token-refresh", 30*time.Second, "how often to check the token file for a new token (env KUBEPLEX_TOKEN_REFRESH)")
	fs.BoolVar(&o.ship.Gzip, "gzip", false, "gzip batches (env KUBEPLEX_GZIP)")
	fs.IntVar(&o.ship.QueueLines, "queue-lines", 10000, "queue bound in lines (env KUBEPLEX_QUEUE_LINES)")
	fs.IntVar(&o.ship.QueueBytes, "queue-bytes", 4<<20, "queue bound in bytes (env KUBEPLEX_QUEUE_BYTES)")
	fs.IntVar(&o.ship.Attempts, "attempts", 5, "POST attempts per batch before its lines count as lost (env KUBEPLEX_ATTEMPTS)")
	fs.DurationVar(&o.ship.BackoffMax, "backoff-max", 4*time.Second, "cap of the retry backoff (env KUBEPLEX_BACKOFF_MAX)")
	fs.DurationVar(&o.flushTimeout, "flush-timeout", 5*time.Second, "how long to flush after the worker exits or on SIGTERM (env KUBEPLEX_FLUSH_TIMEOUT)")
	fs.DurationVar(&o.sidecarWait, "sidecar-wait", 5*time.Second, "run: how long to wait for the sidecar's socket before starting the worker anyway (env KUBEPLEX_SIDECAR_WAIT)")
	fs.DurationVar(&o.runtimeMetrics, "runtime-metrics", 0, "run: write the container's memory and load as log-runtime-metrics lines this often; 0 = off (env KUBEPLEX_RUNTIME_METRICS)")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "run: where the cgroup filesystem is mounted (env KUBEPLEX_CGROUP_ROOT; tests)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error (env KUBEPLEX_LOG_LEVEL)")
}

// HelpError is what ParseOptions returns for --help (of the collector or of a
// command): not a failure, the answer is the usage text.
type HelpError struct{ Flags string }

func (e *HelpError) Error() string { return "help requested" }

// Is makes errors.Is(err, flag.ErrHelp) hold.
func (e *HelpError) Is(target error) bool { return target == flag.ErrHelp }

// Help returns the text to print, and true, when err asked for help.
func Help(err error) (string, bool) {
	var he *HelpError
	if !errors.As(err, &he) {
		return "", false
	}
	return Usage + he.Flags, true
}

// ParseOptions parses a collector command line (without the program name), with
// lookup (os.LookupEnv) giving the environment: the variables in envFlags stand for
// their flags, KUBEPLEX_TOKEN, the pod's identity and KUBEPLEX_CONTAINERS are read
// as they are. A value that does not parse is an error naming its variable or flag.
func ParseOptions(argv []string, lookup func(string) (string, bool)) (Command, error) {
	var c Command
	if len(argv) == 0 {
		return c, errors.New("no command")
	}
	c.Name = argv[0]
	switch c.Name {
	case CmdRun, CmdSidecar, CmdInstall:
	case "-h", "-help", "--help", "help":
		return c, &HelpError{}
	default:
		return c, fmt.Errorf("unknown command %q", c.Name)
	}
	getenv := func(key string) string { v, _ := lookup(key); return v }
	var o commonFlags
	fs := flag.NewFlagSet("collector "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.bind(fs, c.Name)
	for _, ef := range envFlags {
		v, ok := lookup(ef.env)
		if !ok || (v == "" && !emptyMeansOff[ef.flag]) {
			continue
		}
		if err := fs.Set(ef.flag, v); err != nil {
			return c, fmt.Errorf("%s=%q: %w", ef.env, v, err)
		}
	}
	if err := fs.Parse(argv[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return c, &HelpError{Flags: "\nflags of collector " + c.Name + ":\n" + b.String()}
		}
		return c, fmt.Errorf("parse flags: %w", err)
	}
	args := fs.Args()
	if o.ship.TokenFile == "" {
		// Outside Kubernetes, and in pods injected before the token moved to a file.
		o.ship.Token = getenv("KUBEPLEX_TOKEN")
	}
	// Where the lines come from, for drains that carry it (OTLP); the webhook sets
	// both through the downward API.
	o.ship.Pod, o.ship.Node = getenv("KUBEPLEX_POD_NAME"), getenv("KUBEPLEX_NODE_NAME")
	if o.stateDir == "" && o.socket != "" {
		o.stateDir = filepath.Dir(o.socket)
	}
	hostname := getenv("KUBEPLEX_POD_NAME")
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	env := procname.FromEnviron(getenv)
	if o.process != "" {
		env.Process = o.process
	}
	// The collector's own logs go to stderr as text; in run mode they interleave with
	// the worker's stderr copy, so they say who they are.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel})).With("component", "kubeplex-collector")

	switch c.Name {
	case CmdRun:
		if len(args) == 0 {
			return c, errors.New("run: no command after --")
		}
		c.Run = RunOptions{
			Args: args, Ship: o.ship, Process: env.Name(args[0]), Hostname: hostname,
			Socket: o.socket, StateDir: o.stateDir,
			TraceSyslogAddr: o.traceSyslog, TraceHTTPAddr: o.traceHTTP, TraceOTLPAddr: o.traceOTLP,
			FlushTimeout: o.flushTimeout, SidecarWait: o.sidecarWait, Log: log,
			RuntimeMetrics: o.runtimeMetrics, CgroupRoot: o.cgroupRoot,
		}
	case CmdSidecar:
		var containers []string
		for _, name := range strings.Split(getenv("KUBEPLEX_CONTAINERS"), ",") {
			if name = strings.TrimSpace(name); name != "" {
				containers = append(containers, name)
			}
		}
		c.Sidecar = SidecarOptions{
			Ship: o.ship, Process: env.Name(""), Hostname: hostname, Socket: o.socket,
			TraceSyslogAddr: o.traceSyslog, TraceHTTPAddr: o.traceHTTP, TraceOTLPAddr: o.traceOTLP, StateRoot: o.stateRoot,
			Mode: o.mode, PodLogDir: o.podLogDir, Namespace: getenv("KUBEPLEX_POD_NAMESPACE"),
			PodName: getenv("KUBEPLEX_POD_NAME"), PodUID: getenv("KUBEPLEX_POD_UID"),
			Containers: containers, ContainerProcess: containerProcess(env, len(containers)),
			StateDir: o.stateDir, FlushTimeout: o.flushTimeout, Log: log,
		}
	case CmdInstall:
		if len(args) < 1 {
			return c, errors.New("install: want DEST [STATE-DIR...]")
		}
		c.Install, c.StateDirs = args[0], args[1:]
	}
	return c, nil
}

// containerProcess names a tailed container's process. A tailed container is named
// like a wrapped one when it is alone; beside others, each is <container>.<n> so
// their lines stay apart.
func containerProcess(env procname.Env, containers int) func(string) string {
	return func(c string) string {
		if containers == 1 {
			e := env
			e.Container = c
			return e.Name(c)
		}
		return procname.Env{ProcessType: c, PodIndex: env.PodIndex, PodName: env.PodName}.Name(c)
	}
}

// Execute runs the command. For run it returns the worker's end as a *WorkerExit.
func (c Command) Execute(ctx context.Context) error {
	switch c.Name {
	case CmdInstall:
		if err := Install(c.Install); err != nil {
			return err
		}
		return MakeStateDirs(c.StateDirs)
	case CmdRun:
		exit, err := Run(ctx, c.Run)
		if err != nil {
			return err
		}
		return &WorkerExit{Code: exit.Code, Signal: exit.Signal}
	case CmdSidecar:
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return Sidecar(ctx, c.Sidecar)
	}
	return fmt.Errorf("unknown command %q", c.Name)
}

// WorkerExit carries the worker's end to main, which ends the collector the same way.
type WorkerExit struct {
	Code   int
	Signal syscall.Signal
}

func (e *WorkerExit) Error() string { return "worker exited with status " + strconv.Itoa(e.Code) }

// Exit ends the collector as the worker ended: with its status, or killed by its
// signal, so a supervisor sees the worker's own death. PID 1 ignores signals it has no
// handler for, so after re-raising the signal it falls back to the shell's 128+n.
func (e *WorkerExit) Exit() {
	if e.Signal != 0 {
		signal.Reset(e.Signal)
		_ = syscall.Kill(os.Getpid(), e.Signal)
		time.Sleep(100 * time.Millisecond)
		os.Exit(128 + int(e.Signal))
	}
	os.Exit(e.Code)
}
