package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/webhook/imagecmd"
)

// Path is where the pod mutator is served; config/webhook points the API server at it.
const Path = "/inject-pod"

// Handler is the admission.Handler for pod CREATE. It answers "allowed" to every
// request, with or without a patch: failurePolicy Ignore covers an unreachable
// webhook, but a response with allowed=false would be a denial, and kubeplex must
// never be why a pod cannot start.
type Handler struct {
	// Client reads LogApps (normally the manager's cached client).
	Client client.Reader
	// APIReader is asked when Client does not know the LogApp: a LogApp created just
	// before its Deployment may not be in the cache yet. May be nil.
	APIReader client.Reader
	Decoder   admission.Decoder
	Config    Config
	// SkipNamespaces are never injected (the manager's own namespace, kube-system),
	// even if the namespaceSelector lets a request through.
	SkipNamespaces []string
	// Images, when set, reads the ENTRYPOINT/CMD of Exec-mode workers whose spec
	// names no command from their registry, within ImageBudget for the whole pod.
	// Nil: such workers are left to the usual fallback (skip, or CRITail).
	Images      *imagecmd.Resolver
	ImageBudget time.Duration
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler.
func (h *Handler) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	log := logf.FromContext(ctx)
	defer func() {
		if r := recover(); r != nil {
			log.Info("Pod mutation panicked; pod admitted unchanged", "panic", fmt.Sprint(r))
			resp = admission.Allowed("kubeplex: internal error, pod not injected")
		}
	}()

	if req.Operation != admissionv1.Create || req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.SubResource != "" {
		return admission.Allowed("")
	}
	if slices.Contains(h.SkipNamespaces, req.Namespace) {
		return admission.Allowed("namespace excluded from injection")
	}
	pod := &corev1.Pod{}
	if err := h.Decoder.Decode(req, pod); err != nil {
		log.Info("Cannot decode pod; admitted unchanged", "error", err.Error())
		return admission.Allowed("kubeplex: pod not decodable, not injected")
	}
	appName := pod.Labels[kubeplexv1alpha1.AppLabel]
	if appName == "" || AlreadyProcessed(pod) {
		return admission.Allowed("")
	}

	target, reason := h.target(ctx, req.Namespace, appName)
	injected := false
	if reason != "" {
		Skip(pod, reason)
	} else if resolved, note := h.resolveCommands(ctx, pod, target); resolved != nil && Mutate(resolved, target, h.Config) {
		pod, injected = resolved, true
	} else {
		injected = Mutate(pod, target, h.Config)
		if !injected && note != "" {
			pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation] += "; " + note
		}
	}
	log.V(1).Info("Pod admitted", "app", appName, "generateName", pod.GenerateName, "name", pod.Name,
		"injection", pod.Annotations[kubeplexv1alpha1.InjectionAnnotation],
		"reason", pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation])

	mutated, err := json.Marshal(pod)
	if err != nil {
		log.Info("Cannot encode mutated pod; admitted unchanged", "error", err.Error())
		return admission.Allowed("kubeplex: pod not injected")
	}
	resp = admission.PatchResponseFromRaw(req.Object.Raw, mutated)
	if !injected {
		resp.Warnings = append(resp.Warnings, "kubeplex: collector not injected: "+pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation])
	}
	return resp
}

// resolveCommands returns a copy of pod whose Exec-mode workers without a command got
// their image's ENTRYPOINT and CMD as command and args (Kubernetes' rules), or nil
// when there is nothing to resolve or a lookup failed; note then says why, for the
// skip reason. Lookups share one time budget and honour the pod's imagePullSecrets
// (the ServiceAccount admission plugin, which runs before webhooks, has already
// copied the ServiceAccount's into the pod).
func (h *Handler) resolveCommands(ctx context.Context, pod *corev1.Pod, t Target) (*corev1.Pod, string) {
	if h.Images == nil || (t.Mode != "" && t.Mode != kubeplexv1alpha1.CollectorExec) {
		return nil, ""
	}
	workers, reason := workerContainers(pod)
	if reason != "" {
		return nil, ""
	}
	var todo []int
	for _, i := range workers {
		if len(pod.Spec.Containers[i].Command) == 0 {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return nil, ""
	}
	budget := h.ImageBudget
	if budget <= 0 {
		budget = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	var secrets [][]byte
	for _, ref := range pod.Spec.ImagePullSecrets {
		var s corev1.Secret
		r := h.APIReader
		if r == nil {
			r = h.Client
		}
		if err := r.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}, &s); err != nil {
			continue // as the kubelet does: a missing pull secret is not fatal
		}
		for _, k := range []string{corev1.DockerConfigJsonKey, corev1.DockerConfigKey} {
			if b := s.Data[k]; len(b) > 0 {
				secrets = append(secrets, b)
			}
		}
	}
	out := pod.DeepCopy()
	var from []string
	for _, i := range todo {
		c := &out.Spec.Containers[i]
		ic, err := h.Images.Resolve(ctx, c.Image, secrets)
		if err == nil {
			c.Command, c.Args, err = ic.Apply(c.Args)
		}
		if err != nil {
			logf.FromContext(ctx).Info("Cannot read image command; falling back", "container", c.Name, "image", c.Image, "error", err.Error())
			return nil, fmt.Sprintf("the command of container %q could not be read from its image's registry: %v", c.Name, err)
		}
		from = append(from, c.Name+"="+ic.Digest)
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[kubeplexv1alpha1.ImageCommandAnnotation] = strings.Join(from, ",")
	return out, ""
}

// target reads the pod's LogApp and returns what injection needs, or why the pod
// cannot be injected now.
func (h *Handler) target(ctx context.Context, namespace, name string) (Target, string) {
	var app kubeplexv1alpha1.LogApp
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := h.Client.Get(ctx, key, &app)
	if apierrors.IsNotFound(err) && h.APIReader != nil {
		err = h.APIReader.Get(ctx, key, &app)
	}
	switch {
	case apierrors.IsNotFound(err):
		return Target{}, fmt.Sprintf("LogApp %q not found in namespace %q", name, namespace)
	case err != nil:
		logf.FromContext(ctx).Info("Cannot read LogApp; pod not injected", "app", name, "error", err.Error())
		return Target{}, fmt.Sprintf("LogApp %q could not be read", name)
	case app.DeletionTimestamp != nil:
		return Target{}, fmt.Sprintf("LogApp %q is being deleted", name)
	case app.Status.TokenSecretName == "":
		return Target{}, fmt.Sprintf("LogApp %q is not ready: it has no token Secret yet", name)
	}
	if c := meta.FindStatusCondition(app.Status.Conditions, kubeplexv1alpha1.ReadyCondition); c != nil && c.Status == metav1.ConditionFalse {
		return Target{}, fmt.Sprintf("LogApp %q is not ready: %s", name, c.Reason)
	}
	// The sidecar gets the app's collector credential, not its ingest token: only the
	// collector's may write the app's process events (docs/collector.md, "Trust"). The
	// LogApp reconciler writes it in the same pass as the token Secret, before Ready.
	t := Target{App: name, TokenSecretName: app.Name + kubeplexv1alpha1.CollectorSecretSuffix, Mode: app.Spec.CollectorMode,
		RuntimeMetrics: app.Spec.RuntimeMetrics}
	if t.Mode == kubeplexv1alpha1.CollectorCRITail {
		t.PodSecurityEnforce = h.podSecurityEnforce(ctx, namespace)
	}
	return t, ""
}

// podSecurityEnforce returns the namespace's enforced Pod Security level, or "" when
// it cannot be read (then injection goes ahead: worst case the pod is rejected with
// a clear Pod Security message, as it would be without kubeplex for a hostPath).
func (h *Handler) podSecurityEnforce(ctx context.Context, namespace string) string {
	r := h.APIReader
	if r == nil {
		r = h.Client
	}
	var ns corev1.Namespace
	if err := r.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		logf.FromContext(ctx).Info("Cannot read namespace for its Pod Security level", "namespace", namespace, "error", err.Error())
		return ""
	}
	return ns.Labels[podSecurityEnforceLabel]
}

const podSecurityEnforceLabel = "pod-security.kubernetes.io/enforce"
