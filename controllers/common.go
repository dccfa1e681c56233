// Package controllers holds the manager's reconcilers: LogApp (ingest tokens, pod
// counts), LogDrain (drain token, URL policy, credentials, delivery health) and the
// routing table writer that renders both kinds into the routers' Secrets.
package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// newToken returns "<prefix>.<uuid v4>" (architecture.md: t.<uuid>, d.<uuid>).
func newToken(prefix string) (string, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return "", fmt.Errorf("generate %s token: %w", prefix, err)
	}
	return prefix + "." + id.String(), nil
}

// newHMACKey returns a random 256-bit key, hex-encoded.
func newHMACKey() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate signing key: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Field indexes on LogDrains.
const (
	// drainAppIndex: spec.appRef.name, or namespaceWideIndexValue for a drain with an
	// appSelector.
	drainAppIndex = "spec.appRef.name"
	// namespaceWideIndexValue cannot be a LogApp's name (names are DNS subdomains).
	namespaceWideIndexValue = "*"
	// drainSecretIndex: every Secret the drain refers to (credentials, CA).
	drainSecretIndex = "kubeplex.secretRefs"
)

// IndexFields registers the field indexes the reconcilers use. Call once per manager.
func IndexFields(ctx context.Context, idx client.FieldIndexer) error {
	if err := idx.IndexField(ctx, &kubeplexv1alpha1.LogDrain{}, drainAppIndex, func(o client.Object) []string {
		d := o.(*kubeplexv1alpha1.LogDrain)
		if d.Spec.AppSelector != nil {
			return []string{namespaceWideIndexValue}
		}
		return []string{d.Spec.AppRef.Name}
	}); err != nil {
		return fmt.Errorf("index drains by app: %w", err)
	}
	if err := idx.IndexField(ctx, &kubeplexv1alpha1.LogDrain{}, drainSecretIndex, func(o client.Object) []string {
		return secretRefs(o.(*kubeplexv1alpha1.LogDrain))
	}); err != nil {
		return fmt.Errorf("index drains by secret: %w", err)
	}
	return nil
}

func secretRefs(d *kubeplexv1alpha1.LogDrain) []string {
	var out []string
	if d.Spec.CredentialsSecretRef != nil {
		out = append(out, d.Spec.CredentialsSecretRef.Name)
	}
	if d.Spec.TLS != nil && d.Spec.TLS.CASecretRef != nil {
		out = append(out, d.Spec.TLS.CASecretRef.Name)
	}
	if d.Spec.OTLP != nil && d.Spec.OTLP.HeadersSecretRef != nil {
		out = append(out, d.Spec.OTLP.HeadersSecretRef.Name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// drainAppChanged passes drain creations, deletions and changes of spec.appRef: what
// changes an app's drain count.
func drainAppChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*kubeplexv1alpha1.LogDrain)
			n, ok2 := e.ObjectNew.(*kubeplexv1alpha1.LogDrain)
			return !ok1 || !ok2 || o.Spec.AppRef != n.Spec.AppRef || (o.Spec.AppSelector == nil) != (n.Spec.AppSelector == nil)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// appReadyChanged passes app creations, deletions and flips of the Ready condition:
// what a drain's AppNotFound/AppNotReady waits for. Pod-count updates do not pass.
func appReadyChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*kubeplexv1alpha1.LogApp)
			n, ok2 := e.ObjectNew.(*kubeplexv1alpha1.LogApp)
			if !ok1 || !ok2 {
				return true
			}
			return meta.IsStatusConditionTrue(o.Status.Conditions, kubeplexv1alpha1.ReadyCondition) !=
				meta.IsStatusConditionTrue(n.Status.Conditions, kubeplexv1alpha1.ReadyCondition)
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// coalesceDelay is how long a burst of events about other objects (pods, drains)
// is gathered before the object they map to is reconciled: a thousand drains
// created for one app become about one app status write, not a thousand.
const coalesceDelay = time.Second

// enqueueAfter maps events to requests like handler.EnqueueRequestsFromMapFunc but
// adds them after delay; the work queue folds repeats of a waiting request into one.
func enqueueAfter(delay time.Duration, fn handler.MapFunc) handler.EventHandler {
	add := func(ctx context.Context, obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		if obj == nil {
			return
		}
		for _, r := range fn(ctx, obj) {
			q.AddAfter(r, delay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.ObjectOld, q)
			add(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, e.Object, q)
		},
	}
}
