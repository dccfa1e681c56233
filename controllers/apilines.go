package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/platform"
	"github.com/kubeplex/kubeplex/controllers/routes"
)

// ProcAPI is the process of the API source's lines.
const ProcAPI = "api"

// APILines writes kubeplex[api] lines when a LogApp or LogDrain is created, changed
// (naming the spec fields that changed) or deleted, or a token rotation is asked
// for, with who did it as far as the API server records it: the field manager of
// the newest managedFields entry (kubectl, helm, a controller's name). It never writes
// a secret: drain URLs are shown as scheme://host only, credentials are Secret names.
// It watches from the leader only (controllers are leader-elected), and skips the
// initial list, so a restart or a failover writes nothing.
type APILines struct {
	Platform *platform.Poster
	// Client lists the apps a namespace-wide drain covers (its lines go to each).
	Client client.Reader
}

// SetupWithManager registers the watches; the work happens in the event handlers,
// which see both the old and the new object.
func (a *APILines) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("apilines").
		Watches(&kubeplexv1alpha1.LogApp{}, a.handler()).
		Watches(&kubeplexv1alpha1.LogDrain{}, a.handler()).
		Complete(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			return reconcile.Result{}, nil
		}))
}

func (a *APILines) handler() handler.EventHandler {
	type q = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, _ q) {
			if !e.IsInInitialList {
				a.emit(CreatedLines(e.Object, a.covered(ctx)))
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, _ q) {
			a.emit(ChangedLines(e.ObjectOld, e.ObjectNew, a.covered(ctx)))
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, _ q) {
			a.emit(DeletedLines(e.Object, a.covered(ctx)))
		},
	}
}

// Covered lists the app names of namespace ns that a namespace-wide drain's
// selector covers.
type Covered func(ns string, sel *metav1.LabelSelector) []string

func (a *APILines) covered(ctx context.Context) Covered {
	return func(ns string, sel *metav1.LabelSelector) []string {
		if a.Client == nil {
			return nil
		}
		apps, err := coveredApps(ctx, a.Client, ns, sel)
		if err != nil {
			logf.FromContext(ctx).Error(err, "namespace-wide drain: list the apps to tell", "namespace", ns)
		}
		return apps
	}
}

// forApps is one line per app a namespace-wide drain covers.
func forApps(ns string, apps []string, text string) []platform.Line {
	out := make([]platform.Line, 0, len(apps))
	for _, app := range apps {
		out = append(out, apiLine(routes.ID(ns, app), text))
	}
	return out
}

// covers says which apps a namespace-wide drain takes: "every app of the namespace"
// or "the namespace's apps matching <selector>".
func covers(sel *metav1.LabelSelector) string {
	if s := metav1.FormatLabelSelector(sel); s != "" && s != "<none>" {
		return "the namespace's apps matching " + s
	}
	return "every app of the namespace"
}

func (a *APILines) emit(lines []platform.Line) {
	for _, l := range lines {
		a.Platform.Emit(l)
	}
}

// CreatedLines is the line for a new LogApp or LogDrain; a namespace-wide drain's
// goes to each app it covers.
func CreatedLines(obj client.Object, covered Covered) []platform.Line {
	switch o := obj.(type) {
	case *kubeplexv1alpha1.LogApp:
		return []platform.Line{apiLine(appID(o), fmt.Sprintf("LogApp %s created%s", o.Name, by(o)))}
	case *kubeplexv1alpha1.LogDrain:
		if o.Spec.AppSelector != nil {
			return forApps(o.Namespace, covered(o.Namespace, o.Spec.AppSelector),
				fmt.Sprintf("LogDrain %s created for %s (%s)%s", o.Name, covers(o.Spec.AppSelector), redactURL(o.Spec.URL), by(o)))
		}
		addon := ""
		if o.Spec.Addon != "" {
			addon = " for add-on " + o.Spec.Addon
		}
		return []platform.Line{apiLine(drainApp(o), fmt.Sprintf("LogDrain %s created%s (%s)%s", o.Name, addon, redactURL(o.Spec.URL), by(o)))}
	}
	return nil
}

// ChangedLines are the lines for a changed LogApp or LogDrain: nothing when neither
// its spec nor a token rotation request changed (status writes, metadata churn). A
// namespace-wide drain's go to each app it covers, before or after the change.
func ChangedLines(oldObj, newObj client.Object, covered Covered) []platform.Line {
	switch n := newObj.(type) {
	case *kubeplexv1alpha1.LogApp:
		o, ok := oldObj.(*kubeplexv1alpha1.LogApp)
		if !ok {
			return nil
		}
		var out []platform.Line
		if fields := changedFields(o.Spec, n.Spec); len(fields) > 0 {
			out = append(out, apiLine(appID(n), fmt.Sprintf("LogApp %s changed %s%s", n.Name, strings.Join(fields, ", "), by(n))))
		}
		if o.Annotations[kubeplexv1alpha1.RotateTokenAnnotation] != n.Annotations[kubeplexv1alpha1.RotateTokenAnnotation] {
			out = append(out, apiLine(appID(n), fmt.Sprintf("LogApp %s: ingest token rotation requested%s", n.Name, by(n))))
		}
		return out
	case *kubeplexv1alpha1.LogDrain:
		o, ok := oldObj.(*kubeplexv1alpha1.LogDrain)
		if !ok || (n.Spec.AppSelector == nil) != (o.Spec.AppSelector == nil) {
			return nil // appRef and appSelector cannot be switched (CEL)
		}
		fields := changedFields(o.Spec, n.Spec)
		if len(fields) == 0 {
			return nil
		}
		text := fmt.Sprintf("LogDrain %s changed %s", n.Name, strings.Join(fields, ", "))
		if o.Spec.URL != n.Spec.URL {
			text += " (now " + redactURL(n.Spec.URL) + ")"
		}
		if n.Spec.AppSelector != nil {
			if !equality.Semantic.DeepEqual(o.Spec.AppSelector, n.Spec.AppSelector) {
				text += " (now covers " + covers(n.Spec.AppSelector) + ")"
			}
			text += by(n)
			// The apps it covered keep the old selector's answer in the cache's current
			// labels; both sets are told.
			apps := covered(n.Namespace, n.Spec.AppSelector)
			for _, app := range covered(o.Namespace, o.Spec.AppSelector) {
				if !slices.Contains(apps, app) {
					apps = append(apps, app)
				}
			}
			return forApps(n.Namespace, apps, text)
		}
		text += by(n)
		out := []platform.Line{apiLine(drainApp(n), text)}
		if drainApp(o) != drainApp(n) {
			// It left the old app's stream: say so there too.
			out = append(out, apiLine(drainApp(o), fmt.Sprintf("LogDrain %s moved to LogApp %s%s", n.Name, n.Spec.AppRef.Name, by(n))))
		}
		return out
	}
	return nil
}

// DeletedLines is the line for a deleted object. The API server keeps no record of
// who deleted it in the object, so no actor is named.
func DeletedLines(obj client.Object, covered Covered) []platform.Line {
	switch o := obj.(type) {
	case *kubeplexv1alpha1.LogApp:
		return []platform.Line{apiLine(appID(o), fmt.Sprintf("LogApp %s deleted", o.Name))}
	case *kubeplexv1alpha1.LogDrain:
		if o.Spec.AppSelector != nil {
			return forApps(o.Namespace, covered(o.Namespace, o.Spec.AppSelector), fmt.Sprintf("LogDrain %s deleted", o.Name))
		}
		return []platform.Line{apiLine(drainApp(o), fmt.Sprintf("LogDrain %s deleted", o.Name))}
	}
	return nil
}

func apiLine(app, text string) platform.Line {
	return platform.Line{App: app, Proc: ProcAPI, Text: text}
}

func appID(a *kubeplexv1alpha1.LogApp) string { return routes.ID(a.Namespace, a.Name) }

func drainApp(d *kubeplexv1alpha1.LogDrain) string {
	return routes.ID(d.Namespace, d.Spec.AppRef.Name)
}

// by names the actor: the field manager of the newest spec-level managedFields
// entry (not a status write), e.g. " by kubectl-client-side-apply".
func by(obj client.Object) string {
	var newest *metav1.ManagedFieldsEntry
	for i := range obj.GetManagedFields() {
		e := &obj.GetManagedFields()[i]
		if e.Subresource != "" || e.Manager == "" {
			continue
		}
		if newest == nil || (e.Time != nil && (newest.Time == nil || !e.Time.Before(newest.Time))) {
			newest = e
		}
	}
	if newest == nil {
		return ""
	}
	return " by " + newest.Manager
}

// changedFields lists the spec fields (JSON names, spec.<field>) whose values differ.
func changedFields(oldSpec, newSpec any) []string {
	o, n := fieldsOf(oldSpec), fieldsOf(newSpec)
	var out []string
	for k, v := range n {
		if ov, ok := o[k]; !ok || string(ov) != string(v) {
			out = append(out, "spec."+k)
		}
	}
	for k := range o {
		if _, ok := n[k]; !ok {
			out = append(out, "spec."+k)
		}
	}
	slices.Sort(out)
	return out
}

func fieldsOf(spec any) map[string]json.RawMessage {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil
	}
	m := map[string]json.RawMessage{}
	_ = json.Unmarshal(b, &m) // our own struct's JSON always decodes into a map
	return m
}

// redactURL keeps scheme and host (with port): userinfo, path and query may hold a
// credential.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "destination not shown"
	}
	return u.Scheme + "://" + u.Host
}
