// Command router is kubeplex's data plane: it ingests logs, keeps per-app history and
// delivers to drains, configured by the routing table the manager writes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/router"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/ingest"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := router.Run(ctx, o); err != nil {
		o.Logger.Error("router failed", "err", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (router.Options, error) {
	var (
		o            router.Options
		allow, level string
	)
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.StringVar(&o.HTTPAddr, "http-addr", ":8080", "address for POST /logs, /healthz, /readyz, /status, /metrics")
	fs.StringVar(&o.SyslogTCPAddr, "syslog-tcp-addr", "", "syslog over TCP listen address (empty = off)")
	fs.StringVar(&o.SyslogTLSAddr, "syslog-tls-addr", "", "syslog over TLS listen address (empty = off)")
	fs.StringVar(&o.SyslogUDPAddr, "syslog-udp-addr", "", "syslog over UDP listen address (empty = off)")
	fs.StringVar(&o.TLSCertFile, "tls-cert", "", "certificate file for --syslog-tls-addr")
	fs.StringVar(&o.TLSKeyFile, "tls-key", "", "key file for --syslog-tls-addr")
	fs.StringVar(&o.Routes, "routes", "", "routing table file (standalone use)")
	fs.StringVar(&o.RoutesSecret, "routes-secret", "", "routing table Secret as NAMESPACE/NAME")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config)")
	fs.StringVar(&allow, "allow-cidrs", "", "comma-separated CIDRs, addresses and host names (*.suffix allowed) drains may reach although internal; give it the manager's list")
	fs.IntVar(&o.QueueSize, "queue-size", drain.DefaultQueueSize, "messages buffered per drain before the oldest are dropped")
	fs.IntVar(&o.Limits.MaxFrame, "max-frame", 64<<10, "largest accepted frame in bytes, refused before it is read")
	fs.IntVar(&o.Limits.MaxLine, "max-line", 10000, "longest message text; longer lines are split")
	fs.IntVar(&o.Limits.MaxBody, "max-body", 8<<20, "largest POST /logs body in bytes")
	fs.DurationVar(&o.ReadTimeout, "read-timeout", ingest.DefaultReadTimeout, "close syslog connections silent this long")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 10*time.Second, "time to flush drain queues at shutdown")
	fs.StringVar(&o.Name, "name", os.Getenv("POD_NAME"), "replica name in /status (default: $POD_NAME or host name)")
	fs.StringVar(&o.DebugAddr, "debug-addr", "", "serve net/http/pprof on this address (empty = off)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("router: unexpected arguments %q", fs.Args())
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return o, fmt.Errorf("router: --log-level: %w", err)
	}
	o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	p, hosts, err := drain.ParseAllow(strings.Split(allow, ","))
	if err != nil {
		return o, fmt.Errorf("router: --allow-cidrs: %w", err)
	}
	o.AllowCIDRs, o.AllowHosts = p, hosts
	return o, nil
}
