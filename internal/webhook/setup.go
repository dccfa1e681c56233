package webhook

// The webhook reads LogApps (to find the token Secret) and namespaces (to check Pod
// Security before CRITail injection).
// +kubebuilder:rbac:groups=kubeplex.io,resources=logapps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubeplex/kubeplex/internal/webhook/certs"
	"github.com/kubeplex/kubeplex/internal/webhook/imagecmd"
)

// Values of --webhook-cert-management.
const (
	// CertSelf: the manager keeps its own CA and serving certificate (internal/webhook/certs).
	CertSelf = "self"
	// CertManager and CertExternal: something else (cert-manager and its CA injector,
	// a mounted Secret) provides the certificate files and the caBundle.
	CertManager  = "cert-manager"
	CertExternal = "external"
)

// Options are the manager flags of the pod-injection webhook. The manager sets
// Namespace from its own --namespace.
type Options struct {
	Namespace string

	CollectorImage           string
	CollectorImagePullPolicy string
	RouterURL                string

	// Resources of the injected collector containers, as quantities ("" = none).
	CollectorCPURequest    string
	CollectorMemoryRequest string
	CollectorCPULimit      string
	CollectorMemoryLimit   string
	resources              corev1.ResourceRequirements

	// Image command lookups for workers without a command (imagecmd).
	ResolveImageCommands bool
	ImageLookupTimeout   time.Duration
	InsecureRegistries   string

	CertManagement string
	Service        string
	Configuration  string
	CertSecret     string
	CertHosts      string

	// Not flags: tests shorten lifetimes and move the clock.
	CAValidity, ServingValidity, CertCheckInterval time.Duration
	Now                                            func() time.Time
	// Owner, when set, owns the certificate Secret (package owner).
	Owner *metav1.OwnerReference
}

// BindFlags registers the webhook's flags on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.CollectorImage, "collector-image", "", "image of the collector the webhook injects (binary at /collector); required when the webhook is on")
	fs.StringVar(&o.CollectorImagePullPolicy, "collector-image-pull-policy", "", "imagePullPolicy of the injected collector containers (Always, IfNotPresent, Never); empty: the cluster default")
	fs.StringVar(&o.RouterURL, "router-url", "", "router ingest URL given to injected collectors; empty: http://kubeplex-router.<namespace>.svc:8080/logs")
	def := DefaultResources()
	fs.StringVar(&o.CollectorCPURequest, "collector-cpu-request", def.Requests.Cpu().String(), "CPU request of the injected collector containers; empty: none")
	fs.StringVar(&o.CollectorMemoryRequest, "collector-memory-request", def.Requests.Memory().String(), "memory request of the injected collector containers; empty: none")
	fs.StringVar(&o.CollectorCPULimit, "collector-cpu-limit", "", "CPU limit of the injected collector containers; empty: none")
	fs.StringVar(&o.CollectorMemoryLimit, "collector-memory-limit", def.Limits.Memory().String(), "memory limit of the injected collector containers; empty: none")
	fs.BoolVar(&o.ResolveImageCommands, "resolve-image-commands", false, "read ENTRYPOINT/CMD from the registry for Exec-mode workers whose pod spec names no command, so they can be wrapped (pull secrets honoured, cached by digest)")
	fs.DurationVar(&o.ImageLookupTimeout, "image-lookup-timeout", 2*time.Second, "time budget of all image lookups for one pod; past it the pod falls back as if it could not be resolved")
	fs.StringVar(&o.InsecureRegistries, "insecure-registries", "", "comma-separated registries (host:port) read over plain HTTP by image lookups")
	fs.StringVar(&o.CertManagement, "webhook-cert-management", CertSelf, "who provides the webhook's serving certificate: self (the manager creates, rotates and injects it) or cert-manager/external (files in the webhook server's cert dir)")
	fs.StringVar(&o.Service, "webhook-service", "kubeplex-webhook", "Service in front of the webhook (names in the self-managed certificate)")
	fs.StringVar(&o.Configuration, "webhook-configuration", "kubeplex-injector", "MutatingWebhookConfiguration whose caBundle the manager keeps (self-managed certificates)")
	fs.StringVar(&o.CertSecret, "webhook-cert-secret", certs.DefaultSecretName, "Secret in --namespace holding the self-managed CA and serving certificate")
	fs.StringVar(&o.CertHosts, "webhook-cert-hosts", "", "comma-separated extra DNS names and IP addresses for the self-managed certificate (e.g. 127.0.0.1 for a manager run outside the cluster)")
}

func (o *Options) complete() error {
	var errs []error
	if o.Namespace == "" {
		errs = append(errs, errors.New("namespace is required"))
	}
	if o.CollectorImage == "" {
		errs = append(errs, errors.New("--collector-image is required when the webhook is on"))
	}
	switch corev1.PullPolicy(o.CollectorImagePullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--collector-image-pull-policy: unknown policy %q", o.CollectorImagePullPolicy))
	}
	if o.RouterURL == "" {
		o.RouterURL = "http://kubeplex-router." + o.Namespace + ".svc:8080/logs"
	}
	if u, err := url.Parse(o.RouterURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--router-url: want an http(s) URL, got %q", o.RouterURL))
	} else if u.User != nil {
		// Pod specs are readable by many; credentials belong in the token Secret.
		errs = append(errs, errors.New("--router-url must not carry credentials"))
	}
	res, err := o.collectorResources()
	if err != nil {
		errs = append(errs, err)
	}
	o.resources = res
	switch o.CertManagement {
	case CertSelf, CertManager, CertExternal:
	default:
		errs = append(errs, fmt.Errorf("--webhook-cert-management: want %s, %s or %s, got %q",
			CertSelf, CertManager, CertExternal, o.CertManagement))
	}
	if o.CertManagement == CertSelf && o.Service == "" && o.CertHosts == "" {
		errs = append(errs, errors.New("--webhook-service or --webhook-cert-hosts is required for self-managed certificates"))
	}
	return errors.Join(errs...)
}

// collectorResources parses the resource flags. A request above its limit would make
// every injected pod invalid, so it is refused here, at start-up.
func (o *Options) collectorResources() (corev1.ResourceRequirements, error) {
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	var errs []error
	for _, f := range []struct {
		flag, value string
		list        corev1.ResourceList
		name        corev1.ResourceName
	}{
		{"--collector-cpu-request", o.CollectorCPURequest, res.Requests, corev1.ResourceCPU},
		{"--collector-memory-request", o.CollectorMemoryRequest, res.Requests, corev1.ResourceMemory},
		{"--collector-cpu-limit", o.CollectorCPULimit, res.Limits, corev1.ResourceCPU},
		{"--collector-memory-limit", o.CollectorMemoryLimit, res.Limits, corev1.ResourceMemory},
	} {
		if f.value = strings.TrimSpace(f.value); f.value == "" {
			continue
		}
		q, err := resource.ParseQuantity(f.value)
		if err != nil || q.Sign() < 0 {
			errs = append(errs, fmt.Errorf("%s: want a non-negative quantity such as 10m or 64Mi, got %q", f.flag, f.value))
			continue
		}
		f.list[f.name] = q
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := res.Requests[name]
		limit, hasLimit := res.Limits[name]
		if hasReq && hasLimit && req.Cmp(limit) > 0 {
			errs = append(errs, fmt.Errorf("collector %s request %s is above its limit %s", name, req.String(), limit.String()))
		}
	}
	if len(res.Requests) == 0 {
		res.Requests = nil
	}
	if len(res.Limits) == 0 {
		res.Limits = nil
	}
	return res, errors.Join(errs...)
}

// Setup registers the pod mutator on mgr's webhook server and, with self-managed
// certificates, provisions the serving certificate before returning (the webhook
// server loads it when the manager starts) and adds the renewal loop to mgr.
func Setup(ctx context.Context, mgr manager.Manager, o Options) error {
	if err := o.complete(); err != nil {
		return fmt.Errorf("webhook options: %w", err)
	}
	srv := mgr.GetWebhookServer()
	if o.CertManagement == CertSelf {
		cm, err := newCertManager(mgr, srv, o)
		if err != nil {
			return err
		}
		if err := cm.Ensure(ctx); err != nil {
			return fmt.Errorf("provision webhook certificate: %w", err)
		}
		if err := mgr.Add(cm); err != nil {
			return fmt.Errorf("add webhook certificate manager: %w", err)
		}
	}
	h := &Handler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Decoder:   admission.NewDecoder(mgr.GetScheme()),
		Config: Config{
			CollectorImage:  o.CollectorImage,
			ImagePullPolicy: corev1.PullPolicy(o.CollectorImagePullPolicy),
			RouterURL:       o.RouterURL,
			Resources:       &o.resources,
		},
		SkipNamespaces: []string{o.Namespace, "kube-system"},
		ImageBudget:    o.ImageLookupTimeout,
	}
	if o.ResolveImageCommands {
		var insecure []string
		for r := range strings.SplitSeq(o.InsecureRegistries, ",") {
			if r = strings.TrimSpace(r); r != "" {
				insecure = append(insecure, r)
			}
		}
		h.Images = imagecmd.New(insecure)
	}
	srv.Register(Path, &admission.Webhook{Handler: h})
	return nil
}

func newCertManager(mgr manager.Manager, srv ctrlwebhook.Server, o Options) (*certs.Manager, error) {
	ds, ok := srv.(*ctrlwebhook.DefaultServer)
	if !ok {
		return nil, fmt.Errorf("self-managed certificates need controller-runtime's default webhook server, got %T", srv)
	}
	// The same defaults the server applies when it starts.
	dir, certName, keyName := ds.Options.CertDir, ds.Options.CertName, ds.Options.KeyName
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")
	}
	var dnsNames []string
	if o.Service != "" {
		dnsNames = certs.ServiceDNSNames(o.Service, o.Namespace)
	}
	var ips []net.IP
	for h := range strings.SplitSeq(o.CertHosts, ",") {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			dnsNames = append(dnsNames, h)
		}
	}
	return certs.New(mgr.GetAPIReader(), mgr.GetClient(), certs.Options{
		Namespace:         o.Namespace,
		SecretName:        o.CertSecret,
		WebhookConfigName: o.Configuration,
		CertDir:           dir,
		CertName:          certName,
		KeyName:           keyName,
		CAValidity:        o.CAValidity,
		ServingValidity:   o.ServingValidity,
		DNSNames:          dnsNames,
		IPAddresses:       ips,
		CheckInterval:     o.CertCheckInterval,
		Now:               o.Now,
		Owner:             o.Owner,
	})
}
