// Package manager assembles kubeplex's operator: its flags, the controller-runtime
// manager, the URL policy, the controllers and the pod-injection webhook.
package manager

import (
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubeplex/kubeplex/controllers"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/egress"
	podwebhook "github.com/kubeplex/kubeplex/internal/webhook"
)

// Options are the manager's flags.
type Options struct {
	Kubeconfig             string
	Namespace              string // where the routing Secrets, the Lease and the routers live
	RoutesSecret           string
	OwnerDeployment        string // the manager's own Deployment, owner of its runtime objects
	MetricsBindAddress     string
	MetricsSecure          bool
	HealthProbeBindAddress string
	LeaderElect            bool
	// LeaseDuration, RenewDeadline and RetryPeriod time the election. A follower
	// takes over at most LeaseDuration + 2 × 1.2 × RetryPeriod after a leader died
	// without releasing the Lease (it sees the last renewal up to one jittered retry
	// late, and tries again up to one later): 10 s + 3.6 s with the defaults, inside
	// the 17 s a failover may take (docs/reliability.md scenario 7). client-go's
	// defaults (15 s, 10 s, 2 s) allow up to 19.8 s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	WebhookPort                               int // 0 turns the webhook off
	Webhook                                   podwebhook.Options
	Sessions                                  controllers.SessionOptions

	Egress egress.Options // the URL policy, the same flags as the routers'

	TokenGracePeriod     time.Duration
	RouterService        string
	RouterStatusPortName string
	RouterStatusURLs     string
	RouterStatusInterval time.Duration
	StatusInterval       time.Duration
	MaxShardBytes        int
	MaxShards            int
	IngestURL            string

	Zap zap.Options
}

// BindFlags defines the manager's flags on fs, each writing into o.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty means in-cluster config (or $KUBECONFIG)")
	fs.StringVar(&o.Namespace, "namespace", "kubeplex-system", "namespace of the routing Secrets, the leader-election Lease and the router Service")
	fs.StringVar(&o.RoutesSecret, "routes-secret", "kubeplex-routes", "name of the routing-table Secret (shards are NAME-1, NAME-2, ...)")
	fs.StringVar(&o.OwnerDeployment, "owner-deployment", "",
		"the manager's own Deployment in --namespace: the Secrets and the Lease the manager creates there are owned by it, "+
			"so deleting it (helm uninstall) deletes them; empty: they are owned by nothing and stay")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", false,
		"serve metrics over HTTPS (a self-signed certificate) to callers whose bearer token the API server authenticates "+
			"and who may get the non-resource URL /metrics (TokenReview, SubjectAccessReview); the chart turns it on")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 turns it off")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "elect a leader with a Lease so only one replica writes")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 10*time.Second, "how long a leader's Lease holds without renewal")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 7*time.Second, "how long the leader retries renewing before it gives up leading")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 1500*time.Millisecond, "time between two tries to take or renew the Lease (jittered up to 2.2×)")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port of the pod-injection webhook; 0 turns it off")
	o.Webhook.BindFlags(fs)
	o.Sessions.BindFlags(fs)
	o.Egress.BindFlags(fs)
	fs.DurationVar(&o.TokenGracePeriod, "token-grace-period", controllers.DefaultTokenGracePeriod, "how long a rotated-out ingest token stays valid")
	fs.StringVar(&o.RouterService, "router-service", "kubeplex-router", "Service whose EndpointSlices list the router pods to read /status from; empty turns discovery off")
	fs.StringVar(&o.RouterStatusPortName, "router-status-port-name", "admin", "name of the router Service port that serves /status (the router's admin listener)")
	fs.StringVar(&o.RouterStatusURLs, "router-status-urls", "", "comma-separated router /status URLs (http://ADMIN:PORT gets /status appended), in addition to discovered ones (tests, standalone routers)")
	fs.DurationVar(&o.RouterStatusInterval, "router-status-interval", 15*time.Second, "how often to read the routers' /status")
	fs.DurationVar(&o.StatusInterval, "drain-status-interval", controllers.DefaultStatusInterval, "least time between two LogDrain status writes while only counters change")
	fs.IntVar(&o.MaxShardBytes, "max-shard-bytes", routes.DefaultMaxShardBytes, "largest routing-table shard, in bytes")
	fs.IntVar(&o.MaxShards, "max-shards", routes.DefaultMaxShards, "most routing-table shards the routers may read (their Role names this many Secrets)")
	fs.StringVar(&o.IngestURL, "ingest-url", "", "the routers' ingest URL as add-on providers reach it (shown in LogApp status.addons); empty means the collectors' router URL")
	o.Zap.BindFlags(fs)
}

// ParseFlags parses the manager's command line (without the program name).
func ParseFlags(args []string) (Options, error) {
	var o Options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	urls, err := statusURLs(o.RouterStatusURLs)
	if err != nil {
		return o, err
	}
	o.RouterStatusURLs = strings.Join(urls, ",")
	return o, nil
}

// statusURLs checks --router-status-urls. A URL without a path means the router's
// admin address and gets /status appended; any other path must end in /status: the
// poller reads the answer as a status report, and a wrong path used to give no
// reports at all, silently (drain "added" lines then waited out their hold).
func statusURLs(list string) ([]string, error) {
	var out []string
	for _, s := range splitList(list) {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--router-status-urls: %q is not an http(s) URL with a host (want http://ROUTER-ADMIN:PORT/status)", s)
		}
		switch {
		case u.Path == "" || u.Path == "/":
			u.Path = "/status"
		case !strings.HasSuffix(u.Path, "/status"):
			return nil, fmt.Errorf("--router-status-urls: %q does not end in /status (the router's admin listener serves its report at /status)", s)
		}
		out = append(out, u.String())
	}
	return out, nil
}
