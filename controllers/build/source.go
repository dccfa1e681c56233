// Package build is the build source: kubeplex[build] lines about an app's build Jobs
// (Jobs labelled kubeplex.io/build: <app>): started, succeeded or failed with the
// duration. The builds' output is not read here: the Job's pods carry the app's label,
// so the injection webhook wraps them like any worker and names their process
// "build" (internal/webhook), and their output reaches the stream as app[build.N]
// through the collector, with the same delivery accounting as every other line.
//
// As the deploy source, every line is the difference between two observations of a
// Job; the Jobs a newly elected leader lists first are its baseline.
package build

import (
	"context"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/platform"
)

// Proc is the process of the build source's lines.
const Proc = "build"

// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=list;watch

// Source writes the build lines from a cache of its own holding only Jobs labelled
// kubeplex.io/build (label-selected by the API server), cut down to what the lines read.
type Source struct {
	Platform *platform.Poster
	// Apps reads LogApps: lines are written only for apps that exist.
	Apps client.Reader
}

// SetupWithManager adds the Source's cache and its leader-only watch to mgr.
func (s *Source) SetupWithManager(mgr ctrl.Manager) error {
	isBuild, err := labels.NewRequirement(kubeplexv1alpha1.BuildLabel, selection.Exists, nil)
	if err != nil {
		return fmt.Errorf("build source: %w", err)
	}
	c, err := cache.New(mgr.GetConfig(), cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient(),
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Label: labels.NewSelector().Add(*isBuild), Transform: slimJob},
		},
	})
	if err != nil {
		return fmt.Errorf("create build source cache: %w", err)
	}
	if err := mgr.Add(c); err != nil {
		return fmt.Errorf("add build source cache: %w", err)
	}
	type q = workqueue.TypedRateLimitingInterface[reconcile.Request]
	h := handler.TypedFuncs[*batchv1.Job, reconcile.Request]{
		CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[*batchv1.Job], _ q) {
			if !e.IsInInitialList {
				s.emit(ctx, e.Object, Lines(nil, e.Object))
			}
		},
		UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[*batchv1.Job], _ q) {
			s.emit(ctx, e.ObjectNew, Lines(e.ObjectOld, e.ObjectNew))
		},
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("buildlines").
		WatchesRawSource(source.Kind(c, &batchv1.Job{}, handler.TypedEventHandler[*batchv1.Job, reconcile.Request](h))).
		Complete(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			return reconcile.Result{}, nil
		}))
}

func (s *Source) emit(ctx context.Context, job *batchv1.Job, lines []string) {
	app := job.Labels[kubeplexv1alpha1.BuildLabel]
	if len(lines) == 0 || app == "" {
		return
	}
	var la kubeplexv1alpha1.LogApp
	if err := s.Apps.Get(ctx, client.ObjectKey{Namespace: job.Namespace, Name: app}, &la); err != nil {
		return // no such LogApp: nobody's stream
	}
	for _, text := range lines {
		s.Platform.Emit(platform.Line{App: job.Namespace + "/" + app, Proc: Proc, Text: text})
	}
}

// Lines compares two observations of a build Job (o nil: created while we watch).
func Lines(o, n *batchv1.Job) []string {
	if o == nil {
		o = &batchv1.Job{}
	}
	var out []string
	if n.Status.StartTime != nil && o.Status.StartTime == nil {
		imgs := make([]string, 0, len(n.Spec.Template.Spec.Containers))
		for _, c := range n.Spec.Template.Spec.Containers {
			imgs = append(imgs, c.Image)
		}
		out = append(out, fmt.Sprintf("Build %s started (%s)", n.Name, strings.Join(imgs, ", ")))
	}
	if c := finished(n); c != nil && finished(o) == nil {
		took := ""
		if n.Status.StartTime != nil {
			end := c.LastTransitionTime
			if n.Status.CompletionTime != nil {
				end = *n.Status.CompletionTime
			}
			took = end.Sub(n.Status.StartTime.Time).Round(time.Second).String()
		}
		if c.Type == batchv1.JobComplete {
			out = append(out, fmt.Sprintf("Build %s succeeded in %s", n.Name, took))
		} else {
			why := c.Reason
			if c.Message != "" {
				why += ": " + c.Message
			}
			out = append(out, fmt.Sprintf("Build %s failed after %s (%s)", n.Name, took, why))
		}
	}
	return out
}

func finished(j *batchv1.Job) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		c := &j.Status.Conditions[i]
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}

func slimJob(obj any) (any, error) {
	j, ok := obj.(*batchv1.Job)
	if !ok {
		return obj, nil
	}
	out := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: j.Name, Namespace: j.Namespace, UID: j.UID,
		ResourceVersion: j.ResourceVersion, Labels: map[string]string{kubeplexv1alpha1.BuildLabel: j.Labels[kubeplexv1alpha1.BuildLabel]}},
		Status: batchv1.JobStatus{StartTime: j.Status.StartTime, CompletionTime: j.Status.CompletionTime, Conditions: j.Status.Conditions}}
	for _, c := range j.Spec.Template.Spec.Containers {
		out.Spec.Template.Spec.Containers = append(out.Spec.Template.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return out, nil
}
