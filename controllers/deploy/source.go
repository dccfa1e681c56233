package deploy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/platform"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=list;watch

// Source writes the deploy lines. Its informers live in caches of their own, which
// hold only what the lines read: pods labelled kubeplex.io/app (any value), the
// kubelet's Pulled, Killing and Unhealthy Events about pods (field-selected by the
// API server), and Deployments, StatefulSets and DaemonSets cut down to their
// revision, replica counts, images, pod-template labels and who changed them.
// Workloads cannot be label-selected (the app label is on their pod template, not on
// them), so they are watched per namespace, in the namespaces that have a LogApp
// only: the leader starts a namespace's workload cache when its first LogApp appears
// and stops it when the last one goes.
type Source struct {
	Platform *platform.Poster
	// Apps reads LogApps (the manager's cached client): lines are written only for
	// apps that exist.
	Apps client.Reader

	mu      sync.Mutex
	rolling map[types.UID]*rollout
	mem     map[types.UID]*memory
	pods    cache.Cache
	// watched holds the running workload caches, by namespace.
	watched map[string]context.CancelFunc
	base    context.Context //nolint:containedctx // the leadership's, for the workload caches
	ctl     controller.Controller
	mgr     ctrl.Manager
}

// SetupWithManager adds the Source's cache and its leader-only watches to mgr.
func (s *Source) SetupWithManager(mgr ctrl.Manager) error {
	s.rolling = map[types.UID]*rollout{}
	s.mem = map[types.UID]*memory{}
	s.watched = map[string]context.CancelFunc{}
	s.mgr = mgr
	hasApp, err := labels.NewRequirement(kubeplexv1alpha1.AppLabel, selection.Exists, nil)
	if err != nil {
		return fmt.Errorf("deploy source: %w", err)
	}
	kill := fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.kind", "Pod"),
		fields.OneTermEqualSelector("reason", "Killing"))
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:   {Label: labels.NewSelector().Add(*hasApp), Transform: slimPod},
			&corev1.Event{}: {Field: kill, Transform: slimEvent},
		},
	})
	if err != nil {
		return fmt.Errorf("create deploy source cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return fmt.Errorf("add deploy source cache: %w", err)
	}
	// Pulled and Unhealthy Events are many more than kills; each its own informer,
	// field-selected too (a field selector cannot say "reason in (…)").
	var more []cache.Cache
	for _, reason := range []string{"Pulled", "Unhealthy"} {
		ec, err := cache.New(mgr.GetConfig(), cache.Options{
			Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient(),
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Event{}: {Field: fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.kind", "Pod"),
					fields.OneTermEqualSelector("reason", reason)), Transform: slimEvent},
			},
		})
		if err != nil {
			return fmt.Errorf("create deploy source cache: %w", err)
		}
		if err := mgr.Add(ec); err != nil {
			return fmt.Errorf("add deploy source cache: %w", err)
		}
		more = append(more, ec)
	}
	s.pods = c
	ctl, err := ctrl.NewControllerManagedBy(mgr).
		Named("deploylines").
		WatchesRawSource(source.Kind(c, &corev1.Pod{}, podHandler(s))).
		WatchesRawSource(source.Kind(c, &corev1.Event{}, eventHandler(s))).
		WatchesRawSource(source.Kind(more[0], &corev1.Event{}, eventHandler(s))).
		WatchesRawSource(source.Kind(more[1], &corev1.Event{}, eventHandler(s))).
		// LogApps (the manager's cache) say which namespaces' workloads to watch:
		// a LogApp's creation or deletion queues its namespace, and the reconciler
		// starts or stops that namespace's workload cache. (Not in the handler: a
		// new watch cannot be added while the controller starts its sources.)
		WatchesRawSource(source.Kind(mgr.GetCache(), &kubeplexv1alpha1.LogApp{}, handler.TypedFuncs[*kubeplexv1alpha1.LogApp, reconcile.Request]{
			CreateFunc: func(_ context.Context, e event.TypedCreateEvent[*kubeplexv1alpha1.LogApp], q queue) {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.Namespace}})
			},
			DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[*kubeplexv1alpha1.LogApp], q queue) {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Object.GetNamespace()}})
			},
		})).
		Build(reconcile.Func(s.reconcileNamespace))
	if err != nil {
		return err
	}
	s.ctl = ctl
	// The workload caches live as long as the leadership: their context is a
	// leader-only runnable's.
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		s.mu.Lock()
		s.base = ctx
		s.mu.Unlock()
		<-ctx.Done()
		return nil
	}))
}

// reconcileNamespace watches the workloads of req's namespace while it has a LogApp.
func (s *Source) reconcileNamespace(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var apps kubeplexv1alpha1.LogAppList
	if err := s.Apps.List(ctx, &apps, client.InNamespace(req.Namespace)); err != nil {
		return reconcile.Result{}, err
	}
	if len(apps.Items) == 0 {
		s.unwatchNamespace(req.Namespace)
		return reconcile.Result{}, nil
	}
	if !s.watchNamespace(ctx, req.Namespace) {
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	return reconcile.Result{}, nil
}

// watchNamespace starts the workload cache of ns unless it runs; false when the
// leadership's context is not there yet. What the cache lists first is the
// baseline, as at the leader's start: a LogApp added to a namespace announces none
// of its workloads' past.
func (s *Source) watchNamespace(ctx context.Context, ns string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watched[ns] != nil {
		return true
	}
	if s.base == nil {
		return false
	}
	log := ctrl.LoggerFrom(ctx).WithValues("namespace", ns)
	c, err := cache.New(s.mgr.GetConfig(), cache.Options{
		Scheme: s.mgr.GetScheme(), Mapper: s.mgr.GetRESTMapper(), HTTPClient: s.mgr.GetHTTPClient(),
		DefaultNamespaces: map[string]cache.Config{ns: {}},
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}:  {Transform: slimWorkload},
			&appsv1.StatefulSet{}: {Transform: slimWorkload},
			&appsv1.DaemonSet{}:   {Transform: slimWorkload},
		},
	})
	if err != nil {
		log.Error(err, "deploy source: cannot watch the namespace's workloads")
		return true
	}
	cctx, cancel := context.WithCancel(s.base)
	s.watched[ns] = cancel
	go func() {
		if err := c.Start(cctx); err != nil {
			log.Error(err, "deploy source: workload cache stopped")
		}
	}()
	go func() {
		if c.WaitForCacheSync(cctx) {
			// From here on a change is news (tests wait for this line).
			log.Info("deploy source watches the namespace's workloads")
		}
	}()
	for _, src := range []source.TypedSource[reconcile.Request]{
		source.Kind(c, &appsv1.Deployment{}, workloadHandler[*appsv1.Deployment](s)),
		source.Kind(c, &appsv1.StatefulSet{}, workloadHandler[*appsv1.StatefulSet](s)),
		source.Kind(c, &appsv1.DaemonSet{}, workloadHandler[*appsv1.DaemonSet](s)),
	} {
		if err := s.ctl.Watch(src); err != nil {
			log.Error(err, "deploy source: cannot watch the namespace's workloads")
		}
	}
	return true
}

// unwatchNamespace stops the workload cache of ns (it has no LogApp left).
func (s *Source) unwatchNamespace(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cancel := s.watched[ns]; cancel != nil {
		cancel()
		delete(s.watched, ns)
	}
	for uid, r := range s.rolling {
		if r.namespace == ns {
			delete(s.rolling, uid)
		}
	}
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

func workloadHandler[T client.Object](s *Source) handler.TypedEventHandler[T, reconcile.Request] {
	return handler.TypedFuncs[T, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[T], _ queue) {
			n, ok := workloadOf(e.Object)
			if !ok {
				return
			}
			s.mu.Lock()
			r := &rollout{namespace: n.Namespace}
			s.rolling[e.Object.GetUID()] = r
			if e.IsInInitialList {
				// The baseline: a rollout under way when we start is finished quietly
				// except for its completion, so nothing already written is repeated.
				if n.Revision != "" && !n.complete() {
					r.Revision = n.Revision
				}
				s.mu.Unlock()
				return
			}
			lines := workloadLines(&workload{Replicas: n.Replicas}, &n, r)
			s.mu.Unlock()
			s.emit(ctx, n.Namespace, n.App, lines)
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[T], _ queue) {
			n, ok := workloadOf(e.ObjectNew)
			if !ok {
				return
			}
			o, _ := workloadOf(e.ObjectOld)
			s.mu.Lock()
			r := s.rolling[e.ObjectNew.GetUID()]
			if r == nil {
				r = &rollout{namespace: n.Namespace}
				s.rolling[e.ObjectNew.GetUID()] = r
			}
			lines := workloadLines(&o, &n, r)
			s.mu.Unlock()
			s.emit(ctx, n.Namespace, n.App, lines)
		},
		DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[T], _ queue) {
			s.mu.Lock()
			delete(s.rolling, e.Object.GetUID())
			s.mu.Unlock()
		},
	}
}

func podHandler(s *Source) handler.TypedEventHandler[*corev1.Pod, reconcile.Request] {
	lines := func(ctx context.Context, o, n *corev1.Pod) {
		s.mu.Lock()
		mem := s.memoryOf(n.UID)
		out, watchUp := podLines(o, n, mem, time.Now())
		for _, c := range watchUp {
			s.watchUp(ctx, n, mem.of(c), c)
		}
		s.mu.Unlock()
		s.emit(ctx, n.Namespace, n.Labels[kubeplexv1alpha1.AppLabel], out)
	}
	return handler.TypedFuncs[*corev1.Pod, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[*corev1.Pod], _ queue) {
			if !e.IsInInitialList {
				lines(ctx, nil, e.Object)
				return
			}
			s.mu.Lock()
			mem := s.memoryOf(e.Object.UID)
			for _, c := range podBaseline(e.Object, mem, time.Now()) {
				s.watchUp(ctx, e.Object, mem.of(c), c)
			}
			s.mu.Unlock()
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*corev1.Pod], _ queue) {
			lines(ctx, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[*corev1.Pod], _ queue) {
			s.mu.Lock()
			if mem := s.mem[e.Object.GetUID()]; mem != nil {
				for _, m := range mem.containers {
					if m.up != nil {
						m.up.Stop()
					}
				}
			}
			delete(s.mem, e.Object.GetUID())
			s.mu.Unlock()
		},
	}
}

// memoryOf is a pod's memory (s.mu held).
func (s *Source) memoryOf(uid types.UID) *memory {
	m := s.mem[uid]
	if m == nil {
		m = &memory{}
		s.mem[uid] = m
	}
	return m
}

// watchUp arms the check that a container in a crash loop has stayed up StayUp
// since the run it started now (s.mu held). One timer per container: a newer run
// replaces the check of the one before.
func (s *Source) watchUp(ctx context.Context, pod *corev1.Pod, m *containerMemory, container string) {
	var started metav1.Time
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container && cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
	}
	if m.up != nil {
		m.up.Stop()
	}
	key, uid := client.ObjectKeyFromObject(pod), pod.UID
	wait := StayUp - time.Since(started.Time)
	m.up = time.AfterFunc(max(wait, 0), func() {
		var now corev1.Pod
		if err := s.pods.Get(ctx, key, &now); err != nil || now.UID != uid {
			return
		}
		var cs *corev1.ContainerStatus
		for i := range now.Status.ContainerStatuses {
			if now.Status.ContainerStatuses[i].Name == container {
				cs = &now.Status.ContainerStatuses[i]
			}
		}
		s.mu.Lock()
		text := ""
		if mem := s.mem[uid]; mem != nil {
			text = upAgain(processName(&now, container), cs, mem.of(container), started)
		}
		s.mu.Unlock()
		if text != "" {
			s.emit(ctx, now.Namespace, now.Labels[kubeplexv1alpha1.AppLabel], []string{text})
		}
	})
}

func eventHandler(s *Source) handler.TypedEventHandler[*corev1.Event, reconcile.Request] {
	line := func(ctx context.Context, o, n *corev1.Event) {
		var pod corev1.Pod
		key := client.ObjectKey{Namespace: n.InvolvedObject.Namespace, Name: n.InvolvedObject.Name}
		if err := s.pods.Get(ctx, key, &pod); err != nil {
			return // not an app's pod (the pod cache holds only those), or gone
		}
		if n.InvolvedObject.UID != "" && n.InvolvedObject.UID != pod.UID {
			return // about an earlier pod of the same name
		}
		if n.Reason == "Unhealthy" {
			s.unhealthy(ctx, o, n, &pod)
			return
		}
		if text := eventLine(o, n, &pod); text != "" {
			s.emit(ctx, pod.Namespace, pod.Labels[kubeplexv1alpha1.AppLabel], []string{text})
		}
	}
	return handler.TypedFuncs[*corev1.Event, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[*corev1.Event], _ queue) {
			if !e.IsInInitialList {
				line(ctx, nil, e.Object)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*corev1.Event], _ queue) {
			line(ctx, e.ObjectOld, e.ObjectNew)
		},
	}
}

// unhealthy takes a kubelet Unhealthy Event about pod (o nil: a new Event): a
// readiness-probe failure, new occurrences only (the kubelet counts repeats on one
// Event). Liveness and startup failures are written when the kubelet kills the
// container (the Killing Event).
func (s *Source) unhealthy(ctx context.Context, o, n *corev1.Event, pod *corev1.Pod) {
	probe, detail := probeFailure(n.Message)
	if probe != "Readiness" {
		return
	}
	fails := occurrences(n)
	if o != nil {
		fails -= occurrences(o)
	}
	if fails <= 0 {
		return
	}
	container := containerOf(n.InvolvedObject.FieldPath)
	var cs *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == container {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	s.mu.Lock()
	text := readinessLine(processName(pod, container), cs, s.memoryOf(pod.UID).of(container), detail, fails, time.Now())
	s.mu.Unlock()
	if text != "" {
		s.emit(ctx, pod.Namespace, pod.Labels[kubeplexv1alpha1.AppLabel], []string{text})
	}
}

func (s *Source) emit(ctx context.Context, namespace, app string, lines []string) {
	if len(lines) == 0 || app == "" {
		return
	}
	var la kubeplexv1alpha1.LogApp
	if err := s.Apps.Get(ctx, client.ObjectKey{Namespace: namespace, Name: app}, &la); err != nil {
		return // no such LogApp: nobody's stream
	}
	for _, text := range lines {
		s.Platform.Emit(platform.Line{App: namespace + "/" + app, Proc: Proc, Text: text})
	}
}

// The transforms keep what the lines read and drop the rest (pod specs, env, volumes)
// before the object is stored.

func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{ObjectMeta: slimMeta(&p.ObjectMeta), Status: corev1.PodStatus{
		Reason: p.Status.Reason, Message: p.Status.Message, Conditions: p.Status.Conditions,
		ContainerStatuses: p.Status.ContainerStatuses,
	}}
	out.Labels = p.Labels
	out.DeletionGracePeriodSeconds = p.DeletionGracePeriodSeconds
	out.Spec.NodeName = p.Spec.NodeName
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return out, nil
}

func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, DeletionTimestamp: m.DeletionTimestamp}
}

func slimTemplate(t *corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	out := corev1.PodTemplateSpec{}
	out.Labels = map[string]string{kubeplexv1alpha1.AppLabel: t.Labels[kubeplexv1alpha1.AppLabel]}
	for _, c := range t.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return out
}

func keepAnnotation(m map[string]string, key string) map[string]string {
	if v, ok := m[key]; ok {
		return map[string]string{key: v}
	}
	return nil
}

// slimManaged keeps of a workload's managedFields the entries that own spec.replicas
// or spec.template, each cut down to its manager, time, subresource and which of
// the two it owns: who scaled or rolled out (lines.go owner).
func slimManaged(entries []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for i := range entries {
		e := &entries[i]
		if e.Subresource == "status" || e.Manager == "" {
			continue
		}
		var owned []string
		for _, f := range []string{"f:replicas", "f:template"} {
			if ownsSpec(e, f) {
				owned = append(owned, `"`+f+`":{}`)
			}
		}
		if len(owned) == 0 {
			continue
		}
		out = append(out, metav1.ManagedFieldsEntry{Manager: e.Manager, Operation: e.Operation, Time: e.Time,
			Subresource: e.Subresource, FieldsType: e.FieldsType,
			FieldsV1: metav1.NewFieldsV1(`{"f:spec":{` + strings.Join(owned, ",") + `}}`)})
	}
	return out
}

func slimWorkload(obj any) (any, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		out := &appsv1.Deployment{ObjectMeta: slimMeta(&o.ObjectMeta), Status: o.Status}
		out.ManagedFields = slimManaged(o.ManagedFields)
		out.Annotations = keepAnnotation(o.Annotations, deploymentRevision)
		out.Spec.Replicas = o.Spec.Replicas
		out.Spec.Template = slimTemplate(&o.Spec.Template)
		return out, nil
	case *appsv1.StatefulSet:
		out := &appsv1.StatefulSet{ObjectMeta: slimMeta(&o.ObjectMeta), Status: o.Status}
		out.ManagedFields = slimManaged(o.ManagedFields)
		out.Spec.Replicas = o.Spec.Replicas
		out.Spec.Template = slimTemplate(&o.Spec.Template)
		return out, nil
	case *appsv1.DaemonSet:
		out := &appsv1.DaemonSet{ObjectMeta: slimMeta(&o.ObjectMeta), Status: o.Status}
		out.ManagedFields = slimManaged(o.ManagedFields)
		out.Annotations = keepAnnotation(o.Annotations, daemonSetRevision)
		out.Spec.Template = slimTemplate(&o.Spec.Template)
		return out, nil
	}
	return obj, nil
}

func slimEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{ObjectMeta: slimMeta(&e.ObjectMeta), InvolvedObject: e.InvolvedObject,
		Reason: e.Reason, Message: e.Message, Count: e.Count, Series: e.Series, Source: e.Source,
		ReportingInstance: e.ReportingInstance, Type: e.Type}, nil
}
