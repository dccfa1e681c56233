package routes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	ownerref "github.com/kubeplex/kubeplex/internal/owner"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// DefaultMaxShardBytes keeps each shard well under the API server's 1 MiB limit on a
// Secret's data, leaving room for metadata and base64 overhead in etcd's 1.5 MiB
// request limit.
const DefaultMaxShardBytes = 900 << 10

// Store writes a sealed table into Secrets Namespace/Base, Base-1, … .
type Store struct {
	Client    client.Client
	Namespace string
	Base      string
	// MaxShardBytes bounds each shard's JSON; 0 means DefaultMaxShardBytes.
	MaxShardBytes int
	// MaxShards is how many shards the routers may read (their Role names that many
	// Secrets); 0 means DefaultMaxShards. A bigger table is not written: the routers
	// keep the last one rather than fail to read a new one.
	MaxShards int
	// Owner, when set, is added to every shard's owners (package owner: deleting the
	// manager's Deployment deletes the table with it).
	Owner *metav1.OwnerReference
	// Encoder, when set, splits the table: the one that sealed it (Renderer), so
	// the apps are not encoded again and unchanged shards are not rebuilt.
	Encoder *routing.Encoder

	mu      sync.Mutex
	written map[string]string // shard name → resourceVersion of this Store's last write
}

// OwnWrite reports whether obj is a shard Secret as this Store last wrote it. The
// routes controller watches the shards to repair what others change; the events of
// its own writes would only make it render the whole table again to find nothing
// to do, and hold back the next real change by that long (docs/scaling.md).
func (s *Store) OwnWrite(obj client.Object) bool {
	if obj.GetNamespace() != s.Namespace || obj.GetResourceVersion() == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written[obj.GetName()] == obj.GetResourceVersion()
}

func (s *Store) wrote(sec *corev1.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written == nil {
		s.written = map[string]string{}
	}
	s.written[sec.Name] = sec.ResourceVersion
}

// DefaultMaxShards matches the router Role in config/rbac (kubeplex-routes,
// kubeplex-routes-1 … -127) and the chart's router.maxShards: with shards filled to
// routing.ShardFill, about 80 MiB of table, some 200,000 drains (docs/scaling.md).
const DefaultMaxShards = 128

// ErrTooManyShards means the table outgrew what the routers may read.
var ErrTooManyShards = errors.New("routing table needs more shards than the routers may read")

// WriteResult says what Write did.
type WriteResult struct {
	Shards  int
	Sizes   []int // bytes of each shard
	Written int   // Secrets created or updated
	Deleted int   // stale shards removed
	// Split is how long encoding the shards took: the manager's own work in a write,
	// without the API calls.
	Split time.Duration
}

// Changed reports whether anything was written.
func (r WriteResult) Changed() bool { return r.Written > 0 || r.Deleted > 0 }

// Write stores t. Shards 1..n-1 are written before shard 0, and stale shards from a
// bigger table are deleted after it: a router that sees a new version in shard 0
// finds every shard it names already in place (routing.Join refuses mixed versions
// and the router retries). Unchanged Secrets are not written.
func (s *Store) Write(ctx context.Context, t *routing.Table) (WriteResult, error) {
	max := s.MaxShardBytes
	if max <= 0 {
		max = DefaultMaxShardBytes
	}
	existing, err := s.list(ctx)
	if err != nil {
		return WriteResult{}, err
	}
	prev := 0
	if s0, ok := existing[0]; ok {
		if h, err := routing.ReadHead(s0.Data[routing.SecretKey]); err == nil {
			prev = h.Shards
		}
	}
	start := time.Now()
	shards, err := s.Encoder.Split(t, max, prev)
	if err != nil {
		return WriteResult{}, fmt.Errorf("write routing table: %w", err)
	}
	split := time.Since(start)
	maxShards := s.MaxShards
	if maxShards <= 0 {
		maxShards = DefaultMaxShards
	}
	if len(shards) > maxShards {
		return WriteResult{Shards: len(shards)}, fmt.Errorf("write routing table: %w: %d shards, limit %d (--max-shards, router Role)",
			ErrTooManyShards, len(shards), maxShards)
	}
	res := WriteResult{Shards: len(shards), Split: split}
	for _, b := range shards {
		res.Sizes = append(res.Sizes, len(b))
	}
	for i := len(shards) - 1; i >= 0; i-- {
		written, err := s.put(ctx, existing[i], i, t.Version, shards[i])
		if err != nil {
			return res, err
		}
		if written {
			res.Written++
		}
	}
	for i, sec := range existing {
		if i < len(shards) {
			continue
		}
		if err := s.Client.Delete(ctx, sec); client.IgnoreNotFound(err) != nil {
			return res, fmt.Errorf("delete stale routing shard %s: %w", sec.Name, err)
		}
		res.Deleted++
	}
	return res, nil
}

// list returns the existing shard Secrets by index.
func (s *Store) list(ctx context.Context) (map[int]*corev1.Secret, error) {
	var l corev1.SecretList
	// Not copied out of the cache (megabytes at scale): put copies before it changes
	// one, and Read only reads.
	if err := s.Client.List(ctx, &l, client.InNamespace(s.Namespace), client.UnsafeDisableDeepCopy,
		client.MatchingLabels{kubeplexv1alpha1.SecretRoleLabel: kubeplexv1alpha1.SecretRoleRoutes}); err != nil {
		return nil, fmt.Errorf("list routing shards: %w", err)
	}
	out := map[int]*corev1.Secret{}
	for i := range l.Items {
		sec := &l.Items[i]
		if idx, ok := s.shardIndex(sec.Name); ok {
			out[idx] = sec
		}
	}
	return out, nil
}

func (s *Store) shardIndex(name string) (int, bool) {
	if name == s.Base {
		return 0, true
	}
	rest, ok := strings.CutPrefix(name, s.Base+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

func (s *Store) put(ctx context.Context, cur *corev1.Secret, i int, version string, data []byte) (bool, error) {
	name := routing.ShardName(s.Base, i)
	if cur == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: s.Namespace,
				Labels:      Labels(kubeplexv1alpha1.SecretRoleRoutes),
				Annotations: map[string]string{kubeplexv1alpha1.RoutesVersionAnnotation: version},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{routing.SecretKey: data},
		}
		ownerref.Set(sec, s.Owner)
		if err := s.Client.Create(ctx, sec); err != nil {
			return false, fmt.Errorf("create routing shard %s: %w", name, err)
		}
		s.wrote(sec)
		return true, nil
	}
	if bytes.Equal(cur.Data[routing.SecretKey], data) && cur.Annotations[kubeplexv1alpha1.RoutesVersionAnnotation] == version &&
		hasLabels(cur.Labels, Labels(kubeplexv1alpha1.SecretRoleRoutes)) && len(cur.Data) == 1 && ownerref.Has(cur, s.Owner) {
		return false, nil
	}
	upd := cur.DeepCopy()
	if upd.Annotations == nil {
		upd.Annotations = map[string]string{}
	}
	upd.Annotations[kubeplexv1alpha1.RoutesVersionAnnotation] = version
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	for k, v := range Labels(kubeplexv1alpha1.SecretRoleRoutes) {
		upd.Labels[k] = v
	}
	upd.Data = map[string][]byte{routing.SecretKey: data}
	ownerref.Set(upd, s.Owner)
	if err := s.Client.Update(ctx, upd); err != nil {
		if apierrors.IsConflict(err) {
			return false, fmt.Errorf("update routing shard %s (will retry): %w", name, err)
		}
		return false, fmt.Errorf("update routing shard %s: %w", name, err)
	}
	s.wrote(upd)
	return true, nil
}

// Labels are the labels of a manager-owned Secret with the given role. The manager's
// cache holds only Secrets with these labels.
func Labels(role string) map[string]string {
	return map[string]string{
		kubeplexv1alpha1.ManagedByLabel:  kubeplexv1alpha1.ManagedByValue,
		kubeplexv1alpha1.SecretRoleLabel: role,
	}
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Read returns the table the Secrets hold now, or nil when there is none (a fresh
// installation). A new leader compares it with what it renders, so that it announces
// changes it makes, not the whole table.
func (s *Store) Read(ctx context.Context) (*routing.Table, error) {
	have, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	shard0, ok := have[0]
	if !ok {
		return nil, nil
	}
	n, err := routing.ShardCount(shard0.Data[routing.SecretKey])
	if err != nil {
		return nil, fmt.Errorf("read routing table: %w", err)
	}
	parts := make([][]byte, n)
	for i := range n {
		sec, ok := have[i]
		if !ok {
			return nil, fmt.Errorf("read routing table: shard %d missing", i)
		}
		parts[i] = sec.Data[routing.SecretKey]
	}
	return routing.Join(parts)
}
