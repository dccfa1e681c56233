// Package owner ties the objects the manager creates at run time in its own namespace
// (routing-table shards, the webhook certificate, the session keys, the platform
// credential, the leader Lease) to the manager's Deployment, so that deleting the
// Deployment — `helm uninstall`, `kubectl delete -k` — has the garbage collector
// delete them too. Helm deletes only what it rendered; these it never knew.
package owner

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Lookup returns an owner reference to Deployment namespace/name, retrying transient
// errors until timeout. A Deployment that does not exist is an error at once: the
// flag naming it is wrong, and objects owned by nothing would be deleted by the
// garbage collector as soon as they are made.
func Lookup(ctx context.Context, c client.Reader, namespace, name string, timeout time.Duration) (*metav1.OwnerReference, error) {
	var d appsv1.Deployment
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		last = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d)
		if apierrors.IsNotFound(last) || apierrors.IsForbidden(last) {
			return false, last
		}
		return last == nil, nil
	})
	if err != nil {
		if last != nil {
			err = last
		}
		return nil, fmt.Errorf("look up owner deployment %s/%s: %w", namespace, name, err)
	}
	return Ref(&d), nil
}

// Ref is a reference to d as the owner of the manager's runtime objects. It is not
// a controller reference (the Deployment controls only its ReplicaSets) and does
// not block the owner's deletion (that would need the finalizers permission on
// Deployments, and nothing waits for these objects).
func Ref(d *appsv1.Deployment) *metav1.OwnerReference {
	return &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID}
}

// Has reports whether obj already names ref as an owner; a nil ref is always had.
func Has(obj metav1.Object, ref *metav1.OwnerReference) bool {
	if ref == nil {
		return true
	}
	for _, o := range obj.GetOwnerReferences() {
		if o.UID == ref.UID {
			return true
		}
	}
	return false
}

// Set adds ref to obj's owners unless it is there (or nil) and reports whether it
// changed obj. A reference to an earlier Deployment of the same name (uninstalled
// and installed again while the object stayed) is replaced.
func Set(obj metav1.Object, ref *metav1.OwnerReference) bool {
	if Has(obj, ref) {
		return false
	}
	var refs []metav1.OwnerReference
	for _, o := range obj.GetOwnerReferences() {
		if o.APIVersion == ref.APIVersion && o.Kind == ref.Kind && o.Name == ref.Name {
			continue
		}
		refs = append(refs, o)
	}
	obj.SetOwnerReferences(append(refs, *ref))
	return true
}
