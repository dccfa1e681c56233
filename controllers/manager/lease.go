package manager

import (
	"context"
	"fmt"
	"os"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/kubeplex/kubeplex/internal/owner"
)

// ownedLeaseLock is the Lease lock controller-runtime would make (same name,
// namespace, identity and client timeout), except that every Lease it creates or
// updates names ref as its owner, so that deleting the manager's Deployment deletes
// the Lease (package owner). A Lease left by an older manager is adopted at its
// next renewal. The lock's events go to rec, which Run points at the manager's
// recorder once the manager exists.
func ownedLeaseLock(cfg *rest.Config, namespace, name string, renewDeadline time.Duration, ref *metav1.OwnerReference,
	rec *lateRecorder) (resourcelock.Interface, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// As controller-runtime does: a hung request must not outlast the renewal.
	cfg.Timeout = max(renewDeadline/2, time.Second)
	c, err := coordinationv1client.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("leader election client: %w", err)
	}
	return &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     ownedLeases{LeasesGetter: c, ref: ref},
		LockConfig: resourcelock.ResourceLockConfig{Identity: host + "_" + string(uuid.NewUUID()), EventRecorder: rec},
	}, nil
}

// ownedLeases adds the owner to each Lease written through it.
type ownedLeases struct {
	coordinationv1client.LeasesGetter
	ref *metav1.OwnerReference
}

func (g ownedLeases) Leases(namespace string) coordinationv1client.LeaseInterface {
	return ownedLeaseClient{LeaseInterface: g.LeasesGetter.Leases(namespace), ref: g.ref}
}

type ownedLeaseClient struct {
	coordinationv1client.LeaseInterface
	ref *metav1.OwnerReference
}

func (c ownedLeaseClient) Create(ctx context.Context, l *coordinationv1.Lease, o metav1.CreateOptions) (*coordinationv1.Lease, error) {
	owner.Set(l, c.ref)
	return c.LeaseInterface.Create(ctx, l, o)
}

func (c ownedLeaseClient) Update(ctx context.Context, l *coordinationv1.Lease, o metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	owner.Set(l, c.ref)
	return c.LeaseInterface.Update(ctx, l, o)
}

// lateRecorder forwards to a recorder set after the lock is made (the manager's,
// which needs the lock to be made first); events before that are dropped.
type lateRecorder struct{ to record.EventRecorder }

func (r *lateRecorder) Event(o runtime.Object, typ, reason, msg string) {
	if r.to != nil {
		r.to.Event(o, typ, reason, msg)
	}
}

func (r *lateRecorder) Eventf(o runtime.Object, typ, reason, format string, args ...any) {
	if r.to != nil {
		r.to.Eventf(o, typ, reason, format, args...)
	}
}

func (r *lateRecorder) AnnotatedEventf(o runtime.Object, ann map[string]string, typ, reason, format string, args ...any) {
	if r.to != nil {
		r.to.AnnotatedEventf(o, ann, typ, reason, format, args...)
	}
}
