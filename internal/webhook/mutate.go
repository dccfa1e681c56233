// Package webhook is the manager's mutating admission webhook for Pods: it adds the
// kubeplex collector to the pods of a LogApp (native sidecar, exec wrapper or CRI-log
// tail) as described in docs/injection.md. It never denies a pod: anything it cannot
// do cleanly leaves the pod as it was, annotated with the reason.
package webhook

import (
	"fmt"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// Names and paths of what the webhook adds to a pod. The collector side relies on the
// paths (docs/architecture.md, "Collector").
const (
	VolumeName           = "kubeplex-collector"
	StateVolumeName      = "kubeplex-state"
	TokenVolumeName      = "kubeplex-token"
	PodLogsVolumeName    = "kubeplex-pod-logs"
	InstallContainerName = "kubeplex-collector-install"
	SidecarContainerName = "kubeplex-collector"

	MountPath     = "/kubeplex"
	CollectorPath = "/kubeplex/bin/collector"
	PodLogsPath   = "/var/log/pods"
	// StatePath is the state volume: whole in the sidecar, and in each wrapped
	// container its own subdirectory (subPath <container name>), writable. The wrapper
	// keeps its restart count there and finds its sidecar socket (SocketPath), so a
	// container can reach only its own socket and the sidecar knows which container
	// every connection comes from (docs/collector.md, "Trust").
	StatePath  = "/kubeplex-state"
	SocketName = "collector.sock"
	SocketPath = StatePath + "/" + SocketName
	// TokenDir holds the LogApp's collector Secret (key "token" only) in the sidecar;
	// TokenPath is the file the collector reads (KUBEPLEX_TOKEN_FILE).
	TokenDir  = "/var/run/kubeplex/token"
	TokenPath = TokenDir + "/" + kubeplexv1alpha1.TokenSecretKey

	// ImageBinary is the collector binary inside the collector image (the Dockerfile
	// puts every binary at /<name>; distroless has no shell and /<name> is not on PATH).
	ImageBinary = "/collector"

	// PodIndexLabel is set by the StatefulSet and indexed-Job controllers; the
	// collector uses it for the process ordinal (web.1, web.2, ...).
	PodIndexLabel = "apps.kubernetes.io/pod-index"

	// ContainersAnnotation on a pod lists (comma-separated) the containers to capture;
	// default: all of them. It lets a pod keep a third-party container without a
	// command (a mesh proxy, say) out of Exec mode.
	ContainersAnnotation = "kubeplex.io/containers"
)

// Environment variables the collector reads (docs/architecture.md, "Collector").
const (
	EnvRouterURL   = "KUBEPLEX_ROUTER_URL"
	EnvTokenFile   = "KUBEPLEX_TOKEN_FILE"
	EnvSocket      = "KUBEPLEX_SOCKET"
	EnvStateDir    = "KUBEPLEX_STATE_DIR"
	EnvStateRoot   = "KUBEPLEX_STATE_ROOT"
	EnvProcessType = "KUBEPLEX_PROCESS_TYPE"
	// EnvRuntimeMetrics turns on the wrapper's log-runtime-metrics lines, every
	// RuntimeMetricsInterval (Heroku's 20 s).
	EnvRuntimeMetrics      = "KUBEPLEX_RUNTIME_METRICS"
	RuntimeMetricsInterval = "20s"
	EnvMode                = "KUBEPLEX_MODE"
	EnvContainers          = "KUBEPLEX_CONTAINERS"
	EnvTraceOTLP           = "KUBEPLEX_TRACE_OTLP_ADDR"
	EnvPodName             = "KUBEPLEX_POD_NAME"
	EnvPodNamespace        = "KUBEPLEX_POD_NAMESPACE"
	EnvPodUID              = "KUBEPLEX_POD_UID"
	EnvPodIndex            = "KUBEPLEX_POD_INDEX"
	EnvNodeName            = "KUBEPLEX_NODE_NAME"
)

// Config is what the manager's flags decide about injected containers.
type Config struct {
	// CollectorImage is the image with the collector binary at ImageBinary.
	CollectorImage string
	// ImagePullPolicy for the collector containers; empty leaves the cluster default.
	ImagePullPolicy corev1.PullPolicy
	// RouterURL is the router's ingest URL (KUBEPLEX_ROUTER_URL).
	RouterURL string
	// Resources of the sidecar and the install step; nil means DefaultResources (the
	// manager always sets them, from its --collector-* flags).
	Resources *corev1.ResourceRequirements
}

// DefaultResources keep the collector schedulable next to small workers (it aims at
// 15 MiB RSS; the chart's collector.resources say the same), and the memory limit
// stops a leak from hurting the node.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("10m"),
			corev1.ResourceMemory: resource.MustParse("16Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
	}
}

// Target is what the webhook needs to know about the pod's LogApp.
type Target struct {
	// App is the LogApp's name.
	App string
	// TokenSecretName holds the sidecar's credential under the key "token": the
	// LogApp's collector Secret (<app>-kubeplex-collector).
	TokenSecretName string
	// Mode is the LogApp's collectorMode; empty means Exec.
	Mode kubeplexv1alpha1.CollectorMode
	// PodSecurityEnforce is the namespace's pod-security.kubernetes.io/enforce level.
	PodSecurityEnforce string
	// RuntimeMetrics is the LogApp's spec.runtimeMetrics.
	RuntimeMetrics bool
}

// AlreadyProcessed reports whether the webhook has seen this pod before: it carries
// the injection annotation or any of the containers or volumes the webhook adds. A
// re-invoked webhook, or a pod created from a copy of an injected one, is left alone.
func AlreadyProcessed(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[kubeplexv1alpha1.InjectionAnnotation]; ok {
		return true
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == SidecarContainerName || c.Name == InstallContainerName {
			return true
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeName || v.Name == StateVolumeName || v.Name == TokenVolumeName || v.Name == PodLogsVolumeName {
			return true
		}
	}
	return false
}

// Skip leaves the pod's spec alone and records why in its annotations, where the
// LogApp reconciler counts it (status.uninjectedPods) and users see it.
func Skip(pod *corev1.Pod, reason string) {
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] = kubeplexv1alpha1.InjectionSkipped
	pod.Annotations[kubeplexv1alpha1.InjectionReasonAnnotation] = reason
}

// Mutate adds the collector to pod for target t, or, when that cannot be done without
// guessing, calls Skip. It reports whether the collector was added. pod must not be
// AlreadyProcessed.
func Mutate(pod *corev1.Pod, t Target, cfg Config) bool {
	workers, reason := workerContainers(pod)
	if reason != "" {
		Skip(pod, reason)
		return false
	}
	mode := t.Mode
	if mode == "" {
		mode = kubeplexv1alpha1.CollectorExec
	}
	switch mode {
	case kubeplexv1alpha1.CollectorExec:
		var noCommand []string
		for _, i := range workers {
			c := &pod.Spec.Containers[i]
			if len(c.Command) == 0 {
				noCommand = append(noCommand, c.Name)
			}
			// A second mount at the same path would make the pod invalid, and a
			// webhook must never be the reason a pod is rejected.
			for _, m := range c.VolumeMounts {
				if p := path.Clean(m.MountPath); p == MountPath || p == StatePath {
					Skip(pod, fmt.Sprintf("container %q already mounts %s", c.Name, p))
					return false
				}
			}
		}
		if len(noCommand) > 0 {
			// The image's ENTRYPOINT is not in the pod spec and the webhook cannot read
			// images, so wrapping would mean guessing the command.
			Skip(pod, fmt.Sprintf("containers without an explicit command cannot be wrapped: %s "+
				"(set command, list the containers to capture in %s, or use collectorMode CRITail)",
				strings.Join(noCommand, ","), ContainersAnnotation))
			return false
		}
		injectExec(pod, workers, t, cfg)
	case kubeplexv1alpha1.CollectorCRITail:
		// Pod Security admission runs after the webhooks and would reject the whole pod
		// for the hostPath volume; better an uncaptured pod than no pod.
		if lvl := t.PodSecurityEnforce; lvl == "baseline" || lvl == "restricted" {
			Skip(pod, fmt.Sprintf("collectorMode CRITail needs a hostPath volume, which the namespace's Pod Security level %q forbids", lvl))
			return false
		}
		injectCRITail(pod, workers, t, cfg)
	default:
		Skip(pod, fmt.Sprintf("LogApp %q has unknown collectorMode %q", t.App, mode))
		return false
	}

	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[kubeplexv1alpha1.InjectionAnnotation] = kubeplexv1alpha1.InjectionInjected
	delete(pod.Annotations, kubeplexv1alpha1.InjectionReasonAnnotation)
	return true
}

// workerContainers returns the indexes of the containers to capture, in pod order.
func workerContainers(pod *corev1.Pod) ([]int, string) {
	if len(pod.Spec.Containers) == 0 {
		return nil, "pod has no containers"
	}
	list, ok := pod.Annotations[ContainersAnnotation]
	if !ok {
		idx := make([]int, len(pod.Spec.Containers))
		for i := range idx {
			idx[i] = i
		}
		return idx, ""
	}
	var idx []int
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name })
		if i < 0 {
			return nil, fmt.Sprintf("%s names unknown container %q", ContainersAnnotation, name)
		}
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, ContainersAnnotation + " names no container"
	}
	slices.Sort(idx)
	return idx, ""
}

func injectExec(pod *corev1.Pod, workers []int, t Target, cfg Config) {
	pod.Spec.Volumes = append(pod.Spec.Volumes, sharedVolume(), stateVolume(), tokenVolume(t))
	names := make([]string, len(workers))
	stateDirs := make([]string, len(workers))
	for j, i := range workers {
		names[j] = pod.Spec.Containers[i].Name
		stateDirs[j] = StatePath + "/" + names[j]
	}
	install := corev1.Container{
		Name:            InstallContainerName,
		Image:           cfg.CollectorImage,
		ImagePullPolicy: cfg.ImagePullPolicy,
		// The install step also creates each worker's state directory, world-writable:
		// the kubelet would create a missing subPath directory owned by root with the
		// volume's mode, and workers run as any user.
		Command:         append([]string{ImageBinary, "install", CollectorPath}, stateDirs...),
		Resources:       resources(cfg),
		SecurityContext: restrictedSecurityContext(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeName, MountPath: MountPath},
			{Name: StateVolumeName, MountPath: StatePath},
		},
	}
	sidecar := sidecarContainer(cfg)
	otlpOn := leaveOTLPPort(pod, &sidecar)
	// The sidecar listens on one socket per wrapped container, in that container's
	// state directory; its own state (none in Exec mode) stays in the shared volume.
	sidecar.Env = slices.Insert(sidecar.Env, 2,
		corev1.EnvVar{Name: EnvStateRoot, Value: StatePath},
		corev1.EnvVar{Name: EnvContainers, Value: strings.Join(names, ",")})
	// The sidecar's own inputs (trace and OTLP on loopback) are named as the workers
	// are: after the pod's process type, or the one wrapped container; beside several,
	// no container can be told apart there, and they stay app.<n>.
	if pt := podProcessType(pod); pt != "" {
		sidecar.Env = append(sidecar.Env, corev1.EnvVar{Name: EnvProcessType, Value: pt})
	} else if len(names) == 1 {
		sidecar.Env = append(sidecar.Env, corev1.EnvVar{Name: EnvProcessType, Value: names[0]})
	}
	sidecar.VolumeMounts = append(sidecar.VolumeMounts, corev1.VolumeMount{Name: StateVolumeName, MountPath: StatePath})
	// Ours go first: the binary must be in place, and the sidecar listening, before
	// any other init container or worker starts.
	pod.Spec.InitContainers = append([]corev1.Container{install, sidecar}, pod.Spec.InitContainers...)

	for _, i := range workers {
		c := &pod.Spec.Containers[i]
		if len(c.Command) == 0 || c.Command[0] != CollectorPath {
			// Args are folded into the command: the wrapper passes everything after
			// "--" to the child verbatim. $(VAR) references are expanded by the kubelet
			// in command and args alike, so moving them keeps their meaning.
			cmd := make([]string, 0, 3+len(c.Command)+len(c.Args))
			cmd = append(cmd, CollectorPath, "run", "--")
			cmd = append(cmd, c.Command...)
			cmd = append(cmd, c.Args...)
			c.Command, c.Args = cmd, nil
		}
		processType := podProcessType(pod)
		if processType == "" {
			processType = c.Name
		}
		env := append([]corev1.EnvVar{
			{Name: EnvSocket, Value: SocketPath},
			{Name: EnvStateDir, Value: StatePath},
			{Name: EnvProcessType, Value: processType},
		}, podEnv()...)
		if t.RuntimeMetrics {
			env = append(env, corev1.EnvVar{Name: EnvRuntimeMetrics, Value: RuntimeMetricsInterval})
		}
		if otlpOn {
			env = append(env, otlpEnv(c)...)
		}
		c.Env = mergeEnv(c.Env, env)
		c.VolumeMounts = append(c.VolumeMounts,
			// Read-only: the worker only executes the binary from here.
			corev1.VolumeMount{Name: VolumeName, MountPath: MountPath, ReadOnly: true},
			// Writable, and only this container's part: its restart count must outlive
			// the container, and its socket must be out of other containers' reach.
			corev1.VolumeMount{Name: StateVolumeName, MountPath: StatePath, SubPath: c.Name})
	}
}

func injectCRITail(pod *corev1.Pod, workers []int, t Target, cfg Config) {
	hostPathType := corev1.HostPathDirectory
	pod.Spec.Volumes = append(pod.Spec.Volumes, sharedVolume(), tokenVolume(t), corev1.Volume{
		Name: PodLogsVolumeName,
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
			Path: PodLogsPath, Type: &hostPathType,
		}},
	})
	names := make([]string, len(workers))
	for j, i := range workers {
		names[j] = pod.Spec.Containers[i].Name
	}
	sidecar := sidecarContainer(cfg)
	leaveOTLPPort(pod, &sidecar)
	extra := []corev1.EnvVar{
		{Name: EnvMode, Value: string(kubeplexv1alpha1.CollectorCRITail)},
		{Name: EnvContainers, Value: strings.Join(names, ",")},
	}
	if pt := podProcessType(pod); pt != "" {
		extra = append(extra, corev1.EnvVar{Name: EnvProcessType, Value: pt})
	}
	// Before the downward-API variables, after the socket: keeps the order stable.
	sidecar.Env = slices.Insert(sidecar.Env, 3, extra...)
	sidecar.VolumeMounts = append(sidecar.VolumeMounts, corev1.VolumeMount{
		Name: PodLogsVolumeName, MountPath: PodLogsPath, ReadOnly: true,
	})
	// CRI log files are root-owned and mode 0640 on the node; reading them takes uid 0
	// (no capabilities are kept). This is the price of tail mode, see docs/injection.md.
	root := int64(0)
	nonRoot := false
	sidecar.SecurityContext.RunAsUser = &root
	sidecar.SecurityContext.RunAsNonRoot = &nonRoot
	pod.Spec.InitContainers = append([]corev1.Container{sidecar}, pod.Spec.InitContainers...)
}

// OTLPPort is OTLP/HTTP's port, where the sidecar takes OpenTelemetry logs on the
// pod's loopback (the SDKs' default endpoint).
const OTLPPort = 4318

// leaveOTLPPort turns the sidecar's OTLP input off when a container of the pod
// declares port 4318 (an OpenTelemetry Collector of the app's own): the sidecar starts
// first and would take the port, and that container would then fail to bind. It
// reports whether the input stays on.
func leaveOTLPPort(pod *corev1.Pod, sidecar *corev1.Container) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.ContainerPort == OTLPPort && (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) {
					sidecar.Env = append(sidecar.Env, corev1.EnvVar{Name: EnvTraceOTLP, Value: ""})
					return false
				}
			}
		}
	}
	return true
}

// The OpenTelemetry SDKs' exporter settings (the specification's environment
// variables) that point a worker's log exporter at the sidecar.
const (
	EnvOTLPEndpoint     = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvOTLPLogsEndpoint = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"
	EnvOTLPProtocol     = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvOTLPLogsProtocol = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"
	// OTLPLogsEndpoint is the sidecar's OTLP input as an exporter URL. The SDKs'
	// defaults differ (Go's otlploghttp dials https://localhost:4318, Python's
	// generic exporter gRPC on 4317): this one is what the sidecar serves.
	OTLPLogsEndpoint = "http://127.0.0.1:4318/v1/logs"
	OTLPLogsProtocol = "http/protobuf"
)

// otlpEnv is what a wrapped worker gets so that its SDK's log exporter reaches the
// sidecar without configuration: the logs endpoint and protocol. Nothing when the
// container sets an OTLP endpoint of its own, asks for a protocol the sidecar does
// not serve (gRPC), or takes variables from envFrom, which the webhook cannot read
// and whose values an env entry would override. A protocol it sets (http/protobuf,
// http/json) is kept.
func otlpEnv(c *corev1.Container) []corev1.EnvVar {
	if len(c.EnvFrom) > 0 {
		return nil
	}
	protocol := ""
	for _, e := range c.Env {
		switch e.Name {
		case EnvOTLPEndpoint, EnvOTLPLogsEndpoint:
			return nil
		case EnvOTLPProtocol, EnvOTLPLogsProtocol:
			if e.Value != "http/protobuf" && e.Value != "http/json" {
				return nil
			}
			protocol = e.Value
		}
	}
	env := []corev1.EnvVar{{Name: EnvOTLPLogsEndpoint, Value: OTLPLogsEndpoint}}
	if protocol == "" {
		env = append(env, corev1.EnvVar{Name: EnvOTLPLogsProtocol, Value: OTLPLogsProtocol})
	}
	return env
}

func stateVolume() corev1.Volume {
	return corev1.Volume{Name: StateVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

func sharedVolume() corev1.Volume {
	return corev1.Volume{Name: VolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// tokenVolume is the LogApp's token Secret as a volume. The token only ever travels
// as a Secret reference: it never appears in the pod spec, its annotations or the
// webhook's logs. A volume, not an env var: the kubelet rewrites a mounted Secret
// after a rotation, while env vars keep the value the container started with, and
// the old token stops working when its grace period ends (docs/architecture.md).
// Only the current token is projected; previous-token stays out of the pod.
func tokenVolume(t Target) corev1.Volume {
	mode := int32(0o444)
	return corev1.Volume{Name: TokenVolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName:  t.TokenSecretName,
		Items:       []corev1.KeyToPath{{Key: kubeplexv1alpha1.TokenSecretKey, Path: kubeplexv1alpha1.TokenSecretKey}},
		DefaultMode: &mode,
	}}}
}

func sidecarContainer(cfg Config) corev1.Container {
	always := corev1.ContainerRestartPolicyAlways
	env := append([]corev1.EnvVar{
		{Name: EnvRouterURL, Value: cfg.RouterURL},
		{Name: EnvTokenFile, Value: TokenPath},
		{Name: EnvStateDir, Value: MountPath},
	}, podEnv()...)
	return corev1.Container{
		Name:            SidecarContainerName,
		Image:           cfg.CollectorImage,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         []string{ImageBinary, "sidecar"},
		// A native sidecar (KEP-753): starts before the workers, keeps running beside
		// them and is stopped after them, so it can flush their last lines.
		RestartPolicy:   &always,
		Env:             env,
		Resources:       resources(cfg),
		SecurityContext: restrictedSecurityContext(),
		// The whole directory, not a subPath: the kubelet does not update subPath
		// mounts of a Secret.
		VolumeMounts: []corev1.VolumeMount{
			{Name: VolumeName, MountPath: MountPath},
			{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true},
		},
	}
}

// podEnv is the pod's identity through the downward API; the collector derives the
// process name (<type>.<n>) and, in tail mode, the log directory from it, and sends
// the pod and node names with its batches (for OTLP drains' k8s.pod.name and
// k8s.node.name).
func podEnv() []corev1.EnvVar {
	field := func(name, fieldPath string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath},
		}}
	}
	return []corev1.EnvVar{
		field(EnvPodName, "metadata.name"),
		field(EnvPodNamespace, "metadata.namespace"),
		field(EnvPodUID, "metadata.uid"),
		field(EnvPodIndex, "metadata.labels['"+PodIndexLabel+"']"),
		field(EnvNodeName, "spec.nodeName"),
	}
}

// mergeEnv appends the variables of add that env does not define yet: a value the
// pod author set on purpose wins.
func mergeEnv(env, add []corev1.EnvVar) []corev1.EnvVar {
	for _, e := range add {
		if !slices.ContainsFunc(env, func(o corev1.EnvVar) bool { return o.Name == e.Name }) {
			env = append(env, e)
		}
	}
	return env
}

func resources(cfg Config) corev1.ResourceRequirements {
	if cfg.Resources == nil {
		return DefaultResources()
	}
	return *cfg.Resources.DeepCopy()
}

// restrictedSecurityContext satisfies the "restricted" Pod Security Standard, so
// injection never makes a pod inadmissible in such a namespace (Exec mode). 65532 is
// the collector image's user.
func restrictedSecurityContext() *corev1.SecurityContext {
	no := false
	yes := true
	uid := int64(65532)
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no,
		ReadOnlyRootFilesystem:   &yes,
		RunAsNonRoot:             &yes,
		RunAsUser:                &uid,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// podProcessType is the process type a pod's labels give: kubeplex.io/process-type,
// else "build" for a build Job's pod (kubeplex.io/build), else none (the container
// name is used).
func podProcessType(pod *corev1.Pod) string {
	if pt := pod.Labels[kubeplexv1alpha1.ProcessTypeLabel]; pt != "" {
		return pt
	}
	if pod.Labels[kubeplexv1alpha1.BuildLabel] != "" {
		return "build"
	}
	return ""
}
