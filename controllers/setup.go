package controllers

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/build"
	"github.com/kubeplex/kubeplex/controllers/deploy"
	"github.com/kubeplex/kubeplex/controllers/health"
	"github.com/kubeplex/kubeplex/controllers/platform"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/egress"
)

// Config wires the reconcilers.
type Config struct {
	// Namespace holds the routing Secrets and the router Service.
	Namespace    string
	RoutesSecret string
	// Owner, when set, owns every object the manager creates in Namespace (package
	// owner): the manager's Deployment, so that uninstalling deletes them.
	Owner         *metav1.OwnerReference
	MaxShardBytes int
	MaxShards     int
	Policy        *egress.Policy

	TokenGracePeriod time.Duration

	// Router health: EndpointSlices of RouterService (port RouterStatusPortName) plus
	// RouterStatusURLs, read every RouterStatusInterval. No service and no URLs turns
	// health reporting off.
	RouterService        string
	RouterStatusPortName string
	RouterStatusURLs     []string
	RouterStatusInterval time.Duration
	// StatusInterval throttles counter-only LogDrain status writes.
	StatusInterval time.Duration

	// RoutesWriteInterval spaces routing-table writes; 0 means
	// DefaultRoutesWriteInterval, negative means none.
	RoutesWriteInterval time.Duration

	// Now is the reconcilers' clock (token grace periods); nil means time.Now. Tests
	// move it instead of waiting.
	Now func() time.Time

	// Sessions configure LogSessions and their signing keys.
	Sessions SessionOptions
	// PlatformURL is the routers' ingest URL the leader posts platform lines to
	// (kubeplex[router], ...); empty turns platform lines off.
	PlatformURL string
	// IngestURL is the routers' ingest URL as add-on providers reach it, shown in
	// LogApp status.addons; empty means PlatformURL.
	IngestURL string

	// Registerer takes the manager's own metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// Setup adds the reconcilers, the field indexes, the Secret metadata cache and the
// router health poller to mgr. The manager's cache must hold only kubeplex-managed
// Secrets (see cmd/manager); nothing here needs more.
func Setup(ctx context.Context, mgr ctrl.Manager, c Config) error {
	if err := IndexFields(ctx, mgr.GetFieldIndexer()); err != nil {
		return err
	}
	// The drains' credential Secrets belong to users and are outside the manager's
	// label-filtered cache; a second cache watches every Secret's metadata (no data)
	// so a drain waiting for one heals as soon as it appears.
	secretsMeta, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient(),
		DefaultTransform: cache.TransformStripManagedFields(),
	})
	if err != nil {
		return fmt.Errorf("create secret metadata cache: %w", err)
	}
	if err := mgr.Add(secretsMeta); err != nil {
		return fmt.Errorf("add secret metadata cache: %w", err)
	}
	recorder := mgr.GetEventRecorder("kubeplex-manager")

	var store *health.Store
	var healthEvents chan event.TypedGenericEvent[client.Object]
	interval := c.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}
	if c.RouterService != "" || len(c.RouterStatusURLs) > 0 {
		store = health.NewStore(time.Now(), interval)
		healthEvents = make(chan event.TypedGenericEvent[client.Object], 1024)
		disc := &health.EndpointSliceDiscovery{
			Reader: mgr.GetAPIReader(), Namespace: c.Namespace, Service: c.RouterService,
			PortName: c.RouterStatusPortName, Static: c.RouterStatusURLs,
		}
		statusErrors := prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kubeplex_router_status_errors_total", Help: "Failed reads of a router's /status."})
		if c.Registerer != nil {
			if err := c.Registerer.Register(statusErrors); err != nil {
				return fmt.Errorf("register metrics: %w", err)
			}
		}
		pi := c.RouterStatusInterval
		if pi <= 0 {
			pi = 15 * time.Second
		}
		poller := &health.Poller{
			Store: store, Discover: disc.Discover, Interval: pi,
			Client: &http.Client{Timeout: 5 * time.Second},
			Log:    mgr.GetLogger().WithName("router-health"), Errors: statusErrors,
			Notify: func(ids []string) {
				for _, id := range ids {
					ns, name, ok := splitID(id)
					if !ok {
						continue
					}
					obj := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
					select {
					case healthEvents <- event.TypedGenericEvent[client.Object]{Object: obj}:
					case <-ctx.Done():
						return
					}
				}
			},
		}
		if err := mgr.Add(poller); err != nil {
			return fmt.Errorf("add router health poller: %w", err)
		}
	}

	view := NewRoutingView()
	if err := (&LogAppReconciler{
		Client: mgr.GetClient(), Recorder: recorder, TokenGracePeriod: c.TokenGracePeriod, View: view, Now: c.Now,
		IngestURL: cmp.Or(c.IngestURL, c.PlatformURL),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up logapp controller: %w", err)
	}
	var poster *platform.Poster
	if c.PlatformURL != "" {
		hostname, _ := os.Hostname()
		poster = &platform.Poster{URL: c.PlatformURL, Hostname: hostname, Token: func(ctx context.Context) (string, error) {
			return ensurePlatformSecret(ctx, mgr.GetClient(), c.Namespace, c.Owner)
		}}
		if err := mgr.Add(poster); err != nil {
			return fmt.Errorf("add platform line poster: %w", err)
		}
	}
	if err := (&LogDrainReconciler{
		Platform: poster,
		Client:   mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder,
		Policy: c.Policy, Health: store, StatusInterval: interval,
	}).SetupWithManager(mgr, secretsMeta, healthEvents); err != nil {
		return fmt.Errorf("set up logdrain controller: %w", err)
	}
	if c.Sessions.KeysSecret != "" {
		if err := (&SessionKeyReconciler{
			Client: mgr.GetClient(), Namespace: c.Namespace, Name: c.Sessions.KeysSecret, Rotation: c.Sessions.KeyRotation,
			Owner: c.Owner,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up session key controller: %w", err)
		}
		if err := (&LogSessionReconciler{
			Client: mgr.GetClient(), Options: c.Sessions, Namespace: c.Namespace,
		}).SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("set up logsession controller: %w", err)
		}
	}
	writeInterval := c.RoutesWriteInterval
	if writeInterval == 0 {
		writeInterval = DefaultRoutesWriteInterval
	}
	if poster != nil {
		if err := (&APILines{Platform: poster, Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up api lines: %w", err)
		}
		if err := (&deploy.Source{Platform: poster, Apps: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up deploy lines: %w", err)
		}
		if err := (&build.Source{Platform: poster, Apps: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up build lines: %w", err)
		}
	}
	if err := (&RoutesReconciler{
		Client: mgr.GetClient(), Metrics: NewRoutesMetrics(c.Registerer), MinWriteInterval: writeInterval, View: view,
		SessionKeysSecret: c.Sessions.KeysSecret,
		Platform:          poster,
		Health:            store,
		Store: &routes.Store{Client: mgr.GetClient(), Namespace: c.Namespace, Base: c.RoutesSecret,
			MaxShardBytes: c.MaxShardBytes, MaxShards: c.MaxShards, Owner: c.Owner},
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up routes controller: %w", err)
	}
	return nil
}

func splitID(id string) (string, string, bool) {
	ns, name, ok := strings.Cut(id, "/")
	return ns, name, ok && ns != "" && name != ""
}

func keepObject(o any) (any, error) { return o, nil }

// CacheOptions keep the manager's memory small in big clusters: of all Secrets, the
// cache holds only the manager's own (label app.kubernetes.io/managed-by=kubeplex).
// Users' credential Secrets are read directly and watched by metadata only (Setup).
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{kubeplexv1alpha1.ManagedByLabel: kubeplexv1alpha1.ManagedByValue})
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			// LogApps and LogDrains keep their managedFields: the API lines name who
			// changed them (APILines). They are few next to Secrets and Pods.
			&kubeplexv1alpha1.LogApp{}:   {Transform: keepObject},
			&kubeplexv1alpha1.LogDrain{}: {Transform: keepObject},
			&corev1.Secret{}:             {Label: managed},
		},
	}
}
