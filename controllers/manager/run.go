package manager

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers"
	"github.com/kubeplex/kubeplex/internal/owner"
	podwebhook "github.com/kubeplex/kubeplex/internal/webhook"
)

// The manager reads its own Deployment once, to name it the owner of its runtime objects.
// +kubebuilder:rbac:groups=apps,namespace=kubeplex-system,resources=deployments,verbs=get

// Secure metrics ask the API server who the caller is and whether it may GET /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsOptions: plain HTTP by default (tests, `make run`); with --metrics-secure,
// HTTPS and only for callers the API server authenticates and authorizes for GET
// /metrics (a ServiceAccount bound to the kubeplex-metrics-reader ClusterRole), as
// kube-controller-manager serves its own. The certificate is self-signed, made in
// memory at start: the connection is private, and scrapers skip verification as
// they do for the control plane's components.
func metricsOptions(opts Options) metricsserver.Options {
	o := metricsserver.Options{BindAddress: opts.MetricsBindAddress}
	if opts.MetricsSecure {
		o.SecureServing = true
		o.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return o
}

// Run runs the manager until ctx ends. The logger is ctrl.Log (main sets it from
// Options.Zap).
func Run(ctx context.Context, opts Options) error {
	log := ctrl.Log.WithName("setup")
	cfg, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return err
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	policy, err := opts.Egress.Policy(pctx, cfg.Host, nil)
	pcancel()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	if err := kubeplexv1alpha1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}

	// The Deployment that owns what the manager creates in its namespace.
	var ownerRef *metav1.OwnerReference
	if opts.OwnerDeployment != "" {
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("owner lookup client: %w", err)
		}
		if ownerRef, err = owner.Lookup(ctx, c, opts.Namespace, opts.OwnerDeployment, 30*time.Second); err != nil {
			return err
		}
	}

	mopts := ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOptions(opts),
		HealthProbeBindAddress:        opts.HealthProbeBindAddress,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              "kubeplex-manager.kubeplex.io",
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &opts.RenewDeadline,
		RetryPeriod:                   &opts.RetryPeriod,
		Cache:                         controllers.CacheOptions(),
	}
	leaseEvents := &lateRecorder{}
	if opts.LeaderElect && ownerRef != nil {
		if mopts.LeaderElectionResourceLockInterface, err = ownedLeaseLock(cfg, opts.Namespace, mopts.LeaderElectionID,
			opts.RenewDeadline, ownerRef, leaseEvents); err != nil {
			return err
		}
	}
	if opts.WebhookPort > 0 {
		mopts.WebhookServer = webhook.NewServer(webhook.Options{Port: opts.WebhookPort})
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	leaseEvents.to = mgr.GetEventRecorderFor(mopts.LeaderElectionID) //nolint:staticcheck // the lock takes the old API's recorder
	if err := controllers.Setup(ctx, mgr, controllers.Config{
		Namespace:            opts.Namespace,
		RoutesSecret:         opts.RoutesSecret,
		Owner:                ownerRef,
		MaxShardBytes:        opts.MaxShardBytes,
		MaxShards:            opts.MaxShards,
		Policy:               policy,
		TokenGracePeriod:     opts.TokenGracePeriod,
		RouterService:        opts.RouterService,
		RouterStatusPortName: opts.RouterStatusPortName,
		RouterStatusURLs:     splitList(opts.RouterStatusURLs),
		RouterStatusInterval: opts.RouterStatusInterval,
		StatusInterval:       opts.StatusInterval,
		Registerer:           metrics.Registry,
		Sessions:             opts.Sessions,
		// Platform lines go where the collectors send theirs.
		PlatformURL: cmp.Or(opts.Webhook.RouterURL, "http://kubeplex-router."+opts.Namespace+".svc:8080/logs"),
		IngestURL:   opts.IngestURL,
	}); err != nil {
		return err
	}

	// The pod-injection webhook, on mgr.GetWebhookServer(); with self-managed
	// certificates they are provisioned before the server starts.
	if opts.WebhookPort > 0 {
		wo := opts.Webhook
		wo.Namespace = opts.Namespace
		wo.Owner = ownerRef
		if err := podwebhook.Setup(ctx, mgr, wo); err != nil {
			return fmt.Errorf("set up webhooks: %w", err)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	if opts.WebhookPort > 0 {
		// Not ready until the webhook server answers TLS: the Service must not send
		// admission requests to a replica that cannot take them yet (they would be
		// ignored, failurePolicy Ignore, and the pod start without its collector).
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return fmt.Errorf("add webhook ready check: %w", err)
		}
	}
	log.Info("starting manager", "namespace", opts.Namespace, "routesSecret", opts.RoutesSecret,
		"leaderElection", opts.LeaderElect, "webhookPort", opts.WebhookPort)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = ctrl.GetConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	if cfg.QPS == 0 {
		// As ctrl.GetConfig does: no client-side throttling (client-go's default is 5
		// requests/s); the API server's priority and fairness protects it instead. At
		// 5/s, 10,000 drains would take an hour to reconcile.
		cfg.QPS = -1
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
