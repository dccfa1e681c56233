package router

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/router/drain"
	httpdrain "github.com/kubeplex/kubeplex/router/drain/http"
	"github.com/kubeplex/kubeplex/router/drain/syslog"
	"github.com/kubeplex/kubeplex/router/ingest"
	"github.com/kubeplex/kubeplex/router/session"
)

// Options are the router's flags.
type Options struct {
	HTTPAddr string
	// AdminAddr serves /status and /metrics (and the probes) apart from ingest: any
	// pod that may post logs reaches HTTPAddr, but only the manager and a scraper
	// should read every drain's status [:9090].
	AdminAddr     string
	SyslogTCPAddr string
	SyslogTLSAddr string
	SyslogUDPAddr string
	// TLSCertFile and TLSKeyFile serve the syslog TLS listener.
	TLSCertFile, TLSKeyFile string

	// Routes is a routing table file; RoutesSecret is "namespace/name" of shard 0.
	Routes       string
	RoutesSecret string
	Kubeconfig   string

	// Egress is the dial-time egress policy's flags: the manager's values, so both
	// judge a drain address alike. The API server this router talks to (if any) is
	// denied as the manager denies its own.
	Egress    egress.Options
	QueueSize int
	Limits    ingest.Limits
	// ReadTimeout closes syslog connections silent this long.
	ReadTimeout time.Duration
	// SyslogCoalesce is the longest a syslog connection waits for more input before
	// a read, when waiting pays (ingest.Syslog.Coalesce): zero takes
	// ingest.DefaultCoalesce, negative reads at once (the flag's 0).
	SyslogCoalesce time.Duration
	// HTTPPushback bounds how long POST /logs holds its answer while none of the
	// app's delivering drains has room (dispatch.App.PublishWhenRoom): zero takes ingest.DefaultPushback, negative
	// answers at once (the flag's 0).
	HTTPPushback time.Duration
	// ShutdownGrace bounds the flush of drain queues at shutdown.
	ShutdownGrace time.Duration
	// Name identifies this replica in /status.
	Name string
	// DebugAddr serves net/http/pprof when set (off by default: it exposes internals).
	DebugAddr string

	Syslog syslog.Options
	HTTP   httpdrain.Options
	// Session configures log sessions and how replicas find each other.
	Session session.Options
	// DrainOwners is how many replicas own each drain (0 = off): only the owners
	// connect to a drain, the others forward its lines to an owner (router/forward);
	// reported on GET /ownership and in metrics.
	DrainOwners int
	// SelfURL is this replica's base URL as the others list it in --peers (with
	// --peer-service it is http://$POD_IP:<http port>).
	SelfURL string

	// LogLevel is the level of the JSON logger ParseFlags makes.
	LogLevel slog.Level
	Logger   *slog.Logger
	// Listening, when set, is called with the bound addresses once serving (tests).
	Listening func(addrs map[string]string)
}

// BindFlags defines the router's flags on fs, each writing into o.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.HTTPAddr, "http-addr", ":8080", "address for POST /logs, /healthz, /readyz (log senders)")
	fs.StringVar(&o.AdminAddr, "admin-addr", ":9090", "address for /status, /metrics, /healthz, /readyz (the manager and a scraper only)")
	fs.StringVar(&o.SyslogTCPAddr, "syslog-tcp-addr", "", "syslog over TCP listen address (empty = off)")
	fs.StringVar(&o.SyslogTLSAddr, "syslog-tls-addr", "", "syslog over TLS listen address (empty = off)")
	fs.StringVar(&o.SyslogUDPAddr, "syslog-udp-addr", "", "syslog over UDP listen address (empty = off)")
	fs.StringVar(&o.TLSCertFile, "tls-cert", "", "certificate file for --syslog-tls-addr")
	fs.StringVar(&o.TLSKeyFile, "tls-key", "", "key file for --syslog-tls-addr")
	fs.StringVar(&o.Routes, "routes", "", "routing table file (standalone use)")
	fs.StringVar(&o.RoutesSecret, "routes-secret", "", "routing table Secret as NAMESPACE/NAME")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config)")
	o.Egress.BindFlags(fs)
	fs.IntVar(&o.QueueSize, "queue-size", drain.DefaultQueueSize, "messages buffered per drain before the oldest are dropped")
	fs.IntVar(&o.Limits.MaxFrame, "max-frame", 64<<10, "largest accepted frame in bytes, refused before it is read")
	fs.IntVar(&o.Limits.MaxLine, "max-line", 10000, "longest message text; longer lines are split")
	fs.IntVar(&o.Limits.MaxBody, "max-body", 8<<20, "largest POST /logs body in bytes")
	fs.DurationVar(&o.ReadTimeout, "read-timeout", ingest.DefaultReadTimeout, "close syslog connections silent this long")
	fs.DurationVar(&o.SyslogCoalesce, "syslog-coalesce", ingest.DefaultCoalesce,
		"longest wait for more input before reading a busy syslog connection that sends in small pieces (0 = off)")
	fs.DurationVar(&o.HTTPPushback, "http-pushback", ingest.DefaultPushback,
		"longest POST /logs waits while none of the app's delivering drains has room for the batch (collectors never wait; 0 = off)")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 10*time.Second, "time to flush drain queues at shutdown")
	fs.StringVar(&o.Name, "name", os.Getenv("POD_NAME"), "replica name in /status (default: $POD_NAME or host name)")
	fs.StringVar(&o.DebugAddr, "debug-addr", "", "serve net/http/pprof on this address (empty = off)")
	o.Session.BindFlags(fs)
	fs.IntVar(&o.DrainOwners, "drain-owners", 0,
		"replicas that own each drain, chosen by rendezvous hashing over the ready peers and this replica: only owners "+
			"connect to the drain, the others forward its lines to an owner (0 = off: every replica delivers)")
	fs.StringVar(&o.SelfURL, "self-url", "", "this replica's base URL as the other replicas' --peers name it (for --drain-owners)")
	fs.TextVar(&o.LogLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
}

// ParseFlags parses the router's command line (without the program name) and makes
// the JSON logger on stderr.
func ParseFlags(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("router: unexpected arguments %q", fs.Args())
	}
	if o.SyslogCoalesce == 0 {
		o.SyslogCoalesce = -1 // --syslog-coalesce=0: off
	}
	if o.HTTPPushback == 0 {
		o.HTTPPushback = -1 // --http-pushback=0: off
	}
	// Refuse a bad egress flag at start, not at the first dial.
	if _, err := o.Egress.Policy(context.Background(), "", nil); err != nil {
		return o, fmt.Errorf("router: %w", err)
	}
	o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: o.LogLevel}))
	return o, nil
}
