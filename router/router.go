// Package router assembles the data plane: routing-table source, dispatcher, ingest
// endpoints, drains, and the HTTP endpoints for health, status and metrics.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/otlpin"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/forward"
	"github.com/kubeplex/kubeplex/router/ingest"
	"github.com/kubeplex/kubeplex/router/metrics"
	"github.com/kubeplex/kubeplex/router/session"
	"github.com/kubeplex/kubeplex/router/session/web"
	"github.com/kubeplex/kubeplex/router/tablesource"
)

// UserAgent is sent by HTTP drains.
const UserAgent = "kubeplex-router/0.1"

// Run serves until ctx ends, then shuts down gracefully: stop accepting, flush drain
// queues within ShutdownGrace, exit.
func Run(ctx context.Context, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 10 * time.Second
	}
	src, apiServer, err := source(o, log)
	if err != nil {
		return err
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	policy, err := o.Egress.Policy(pctx, apiServer, nil)
	pcancel()
	if err != nil {
		return fmt.Errorf("configure egress policy: %w", err)
	}
	m := metrics.New()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, sess, own, fwd, err := dispatcher(ctx, o, policy, m, log)
	if err != nil {
		return err
	}

	addrs := map[string]string{}
	httpLn, err := net.Listen("tcp", orDefault(o.HTTPAddr, ":8080"))
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	addrs["http"] = httpLn.Addr().String()
	srv := &http.Server{Handler: sess.Intercept(ingestMux(d, o.Limits, o.HTTPPushback, m, sess, fwd, log)),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, IdleTimeout: 5 * time.Minute}
	adminLn, err := net.Listen("tcp", orDefault(o.AdminAddr, ":9090"))
	if err != nil {
		_ = httpLn.Close()
		return fmt.Errorf("listen admin: %w", err)
	}
	addrs["admin"] = adminLn.Addr().String()
	adminSrv := &http.Server{Handler: adminMux(d, m, own), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}

	sl := ingest.NewSyslog(d, o.Limits, o.ReadTimeout, m, log)
	if o.SyslogCoalesce != 0 {
		sl.Coalesce = max(o.SyslogCoalesce, 0)
	}
	var closers []func()
	var serveErrs []func() error
	if o.SyslogTCPAddr != "" {
		ln, err := net.Listen("tcp", o.SyslogTCPAddr)
		if err != nil {
			return fmt.Errorf("listen syslog tcp: %w", err)
		}
		addrs["syslog-tcp"] = ln.Addr().String()
		closers = append(closers, func() { _ = ln.Close() })
		serveErrs = append(serveErrs, func() error { return sl.ServeTCP(ln, "tcp") })
	}
	if o.SyslogTLSAddr != "" {
		ln, err := ingest.ListenTLS(o.SyslogTLSAddr, o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return err
		}
		addrs["syslog-tls"] = ln.Addr().String()
		closers = append(closers, func() { _ = ln.Close() })
		serveErrs = append(serveErrs, func() error { return sl.ServeTCP(ln, "tls") })
	}
	if o.SyslogUDPAddr != "" {
		pc, err := net.ListenPacket("udp", o.SyslogUDPAddr)
		if err != nil {
			return fmt.Errorf("listen syslog udp: %w", err)
		}
		addrs["syslog-udp"] = pc.LocalAddr().String()
		closers = append(closers, func() { _ = pc.Close() })
		serveErrs = append(serveErrs, func() error { return sl.ServeUDP(pc) })
	}

	errc := make(chan error, 3+len(serveErrs))
	var wg sync.WaitGroup
	wg.Go(func() {
		apply := func(t *routing.Table) error {
			if err := d.Apply(t); err != nil {
				return err
			}
			sess.SetKeys(t.SessionKeys)
			return nil
		}
		if err := src.Run(ctx, apply); err != nil {
			errc <- fmt.Errorf("routing table source: %w", err)
		}
	})
	go func() {
		if err := srv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve http: %w", err)
		}
	}()
	go func() {
		if err := adminSrv.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve admin: %w", err)
		}
	}()
	for _, serve := range serveErrs {
		go func() {
			if err := serve(); err != nil {
				errc <- err
			}
		}()
	}
	if o.DebugAddr != "" {
		dln, err := net.Listen("tcp", o.DebugAddr)
		if err != nil {
			return fmt.Errorf("listen debug: %w", err)
		}
		addrs["debug"] = dln.Addr().String()
		dsrv := &http.Server{Handler: debugMux(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = dsrv.Serve(dln) }()
		// Debug endpoints only: a close error at exit has nobody to tell.
		defer func() { _ = dsrv.Close() }()
	}
	log.Info("router serving", "addrs", addrs)
	if o.Listening != nil {
		o.Listening(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("router shutting down", "grace", o.ShutdownGrace)
	// Stop accepting first, then flush what was accepted.
	for _, c := range closers {
		c()
	}
	sl.Shutdown()
	sctx, scancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
	defer scancel()
	_ = srv.Shutdown(sctx)
	// The admin listener goes last: /status still answers while queues flush.
	defer func() { _ = adminSrv.Close() }()
	cancel()
	d.Shutdown(sctx)
	wg.Wait()
	st := d.Status()
	for id, ds := range st.Drains {
		log.Info("drain final count", "drain", id, "delivered", ds.Delivered, "dropped", ds.Dropped)
	}
	return runErr
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sessionPeers finds the other replicas: a static list, or the EndpointSlices of the
// router Service.
func sessionPeers(ctx context.Context, o Options) (session.Peers, error) {
	if o.Session.PeerService == "" {
		return session.StaticPeers(o.Session.Peers), nil
	}
	if len(o.Session.Peers) > 0 {
		return nil, errors.New("configure router: --peers and --peer-service are exclusive")
	}
	ns, name, ok := strings.Cut(o.Session.PeerService, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("configure router: --peer-service %q is not NAMESPACE/NAME", o.Session.PeerService)
	}
	cs, _, err := kubeClient(o)
	if err != nil {
		return nil, err
	}
	return session.WatchEndpointSlices(ctx, cs, ns, name, o.Session.PeerPort, o.Name, os.Getenv("POD_IP"))
}

// dispatcher builds the dispatcher and the session handler and, with
// --drain-owners, the drain ownership and the handler of forwarded lines (nil
// when that is off).
func dispatcher(ctx context.Context, o Options, policy *egress.Policy, m *metrics.Metrics, log *slog.Logger) (
	d *dispatch.Dispatcher, sess *session.Handler, own *ownership, fwd *forward.Handler, err error) {
	peers, own, err := replicas(ctx, o, m)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	dopts := dispatch.Options{
		QueueSize: o.QueueSize,
		Dialer:    &drain.Dialer{Policy: *policy, KeepAlive: 30 * time.Second},
		Logger:    log,
		Metrics:   m,
		UserAgent: UserAgent,
		Syslog:    o.Syslog,
		HTTP:      o.HTTP,
		Router:    o.Name,
	}
	if own != nil {
		dopts.Owners = own
	}
	d = dispatch.New(dopts)
	sess = session.New(d, peers, o.Session, web.Handler(), m.Registry, log)
	if own != nil {
		own.start(ctx, d, sess, log)
		fwd = forward.NewHandler(sess.PeerKeys, d, m.Registry)
	}
	return d, sess, own, fwd, nil
}

// replicas finds the other replicas and, with --drain-owners, prepares the drain
// ownership (own is nil when that is off; ownership.start starts it).
func replicas(ctx context.Context, o Options, m *metrics.Metrics) (
	peers session.Peers, own *ownership, err error) {
	if peers, err = sessionPeers(ctx, o); err != nil || o.DrainOwners <= 0 {
		return peers, nil, err
	}
	self, err := selfURL(o, orDefault(o.HTTPAddr, ":8080"))
	if err != nil {
		return nil, nil, err
	}
	own = newOwnership(o.DrainOwners, self, peers, nil, m.Registry)
	return peers, own, nil
}

// selfURL is this replica's name among the drain owners' members: what the other
// replicas have in their peer lists for it.
func selfURL(o Options, httpAddr string) (string, error) {
	switch {
	case o.SelfURL != "":
		return strings.TrimRight(o.SelfURL, "/"), nil
	case o.Session.PeerService != "":
		ip := os.Getenv("POD_IP")
		_, port, err := net.SplitHostPort(httpAddr)
		if ip == "" || err != nil {
			return "", errors.New("configure router: --drain-owners with --peer-service needs $POD_IP (or --self-url)")
		}
		return "http://" + net.JoinHostPort(ip, port), nil
	case len(o.Session.Peers) > 0:
		return "", errors.New("configure router: --drain-owners with --peers needs --self-url")
	}
	return "http://" + httpAddr, nil // alone: it owns every drain
}

// kubeClient returns a client and the API server's address.
func kubeClient(o Options) (*kubernetes.Clientset, string, error) {
	var rc *rest.Config
	var err error
	if o.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, "", fmt.Errorf("configure kubernetes client: %w", err)
	}
	rc.UserAgent = UserAgent
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, "", fmt.Errorf("configure kubernetes client: %w", err)
	}
	return cs, rc.Host, nil
}

// source returns where the routing table comes from and, when that is the API
// server, the server's address (the egress policy refuses it).
func source(o Options, log *slog.Logger) (tablesource.Source, string, error) {
	switch {
	case o.Routes != "" && o.RoutesSecret != "":
		return nil, "", errors.New("configure router: --routes and --routes-secret are exclusive")
	case o.Routes != "":
		return &tablesource.File{Path: o.Routes, Logger: log}, "", nil
	case o.RoutesSecret != "":
		ns, name, ok := strings.Cut(o.RoutesSecret, "/")
		if !ok || ns == "" || name == "" {
			return nil, "", fmt.Errorf("configure router: --routes-secret %q is not NAMESPACE/NAME", o.RoutesSecret)
		}
		cs, host, err := kubeClient(o)
		if err != nil {
			return nil, "", err
		}
		return &tablesource.Secret{Client: cs, Namespace: ns, Name: name, Logger: log}, host, nil
	}
	return nil, "", errors.New("configure router: one of --routes or --routes-secret is required")
}

func debugMux() http.Handler {
	mx := http.NewServeMux()
	mx.HandleFunc("/debug/pprof/", pprof.Index)
	mx.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mx.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mx.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mx.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mx
}

// ingestMux is what log senders reach: POST /logs, sessions and the probes, nothing
// that tells one app about another.
func ingestMux(d *dispatch.Dispatcher, limits ingest.Limits, pushback time.Duration, m *metrics.Metrics,
	sess *session.Handler, fwd *forward.Handler, log *slog.Logger) http.Handler {
	mx := http.NewServeMux()
	h := ingest.NewHTTP(d, limits, m, log)
	if pushback != 0 {
		h.Pushback = max(pushback, 0)
	}
	mx.Handle("/logs", h)
	mx.Handle(otlpin.Path, ingest.NewOTLP(d, limits, m, log))
	sess.Mount(mx)
	if fwd != nil {
		mx.Handle("POST "+forward.Path, fwd) // lines other replicas forward to an owner (--drain-owners)
	}
	probes(mx, d)
	return mx
}

func probes(mx *http.ServeMux, d *dispatch.Dispatcher) {
	mx.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mx.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.Ready() {
			http.Error(w, "no routing table loaded", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// adminMux serves every drain's status (the manager reads it), the metrics and,
// with --drain-owners, the drains this replica owns.
func adminMux(d *dispatch.Dispatcher, m *metrics.Metrics, own *ownership) http.Handler {
	mx := http.NewServeMux()
	probes(mx, d)
	if own != nil {
		mx.HandleFunc("GET /ownership", own.serveHTTP)
	}
	mx.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.Status())
	})
	mx.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry}))
	return mx
}
