package tablesource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubeplex/kubeplex/internal/backoff"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// Secret watches shard 0 of the routing table (the Secret Name in Namespace) and
// reads the other shards by name when it changes. The manager writes shard 0 last,
// so a new version there means the other shards are in place; if they disagree
// anyway (a writer in between) the read is retried.
type Secret struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Logger    *slog.Logger
	// Retry is the wait before re-reading after a failed load [1 s, doubling to 30 s].
	Retry time.Duration

	// shards holds the other shards last applied, decoded, by index, with the
	// digest shard 0 gave them: a change to one app rewrites its shard and shard 0,
	// and only those are read and decoded again (the table is megabytes at tens of
	// thousands of drains).
	shards map[int]cachedShard
	// assembler checks each shard once, when it is first decoded.
	assembler routing.Assembler
	// Reads counts the shard Secrets read by name (not shard 0, which the watch
	// brings), for tests and the scale benchmark.
	Reads atomic.Int64
}

type cachedShard struct {
	digest string
	table  *routing.Table
}

var _ Source = (*Secret)(nil)

// Run watches until ctx ends.
func (s *Secret) Run(ctx context.Context, apply Apply) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	lw := cache.NewFilteredListWatchFromClient(s.Client.CoreV1().RESTClient(), "secrets", s.Namespace,
		func(o *metav1.ListOptions) {
			// A field selector on the name is what lets RBAC resourceNames authorize
			// list and watch.
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.Name).String()
		})
	inf := cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
	changed := make(chan struct{}, 1)
	signal := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    signal,
		UpdateFunc: func(_, n any) { signal(n) },
		DeleteFunc: func(any) { log.Warn("routing table Secret deleted; keeping the table in use", "secret", s.Name) },
	}); err != nil {
		return fmt.Errorf("watch routing table secret: %w", err)
	}
	go inf.RunWithContext(ctx)
	retryBase := s.Retry
	if retryBase <= 0 {
		retryBase = time.Second
	}
	// Jittered: every router of the cluster sees the same bad Secret at once.
	retry := backoff.New(retryBase, 30*time.Second)
	var applied string
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-timer:
			timer = nil
		}
		obj, ok, err := inf.GetStore().GetByKey(s.Namespace + "/" + s.Name)
		if err != nil || !ok {
			continue
		}
		sec, _ := obj.(*corev1.Secret)
		if sec == nil || sec.ResourceVersion == applied {
			continue
		}
		t, err := s.load(ctx, sec)
		if err == nil {
			err = apply(t)
		}
		if err != nil {
			wait := retry.Next()
			log.Error("load routing table from secret", "secret", s.Name, "retry", wait, "err", err)
			timer = time.After(wait)
			continue
		}
		retry.Reset()
		applied = sec.ResourceVersion
	}
}

func (s *Secret) load(ctx context.Context, shard0 *corev1.Secret) (*routing.Table, error) {
	b0, ok := shard0.Data[routing.SecretKey]
	if !ok {
		return nil, fmt.Errorf("read routing table: secret %s has no %s", s.Name, routing.SecretKey)
	}
	head, err := decode(b0, 0)
	if err != nil {
		return nil, err
	}
	n := max(head.Shards, 1)
	if n > routing.MaxShards {
		// Before allocating or fetching anything for it.
		return nil, fmt.Errorf("read routing table: shard 0 claims %d shards, at most %d", n, routing.MaxShards)
	}
	parts := make([]*routing.Table, n)
	parts[0] = head
	for i := 1; i < n; i++ {
		if len(head.Digests) == n {
			if c, ok := s.shards[i]; ok && c.digest == head.Digests[i] {
				parts[i] = c.table
				continue
			}
		}
		name := routing.ShardName(s.Name, i)
		s.Reads.Add(1)
		sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("read routing table shard %s: %w", name, routing.ErrShardsMismatch)
			}
			return nil, fmt.Errorf("read routing table shard %s: %w", name, err)
		}
		if parts[i], err = decode(sec.Data[routing.SecretKey], i); err != nil {
			return nil, err
		}
	}
	t, err := s.assembler.Assemble(parts)
	if err == nil && len(head.Digests) == n {
		// Assemble checked every shard against the digest shard 0 gives it.
		s.shards = make(map[int]cachedShard, n)
		for i := 1; i < n; i++ {
			s.shards[i] = cachedShard{digest: head.Digests[i], table: parts[i]}
		}
	}
	if err != nil {
		if errors.Is(err, routing.ErrShardsMismatch) {
			return nil, fmt.Errorf("read routing table: writer between shards: %w", err)
		}
		return nil, err
	}
	return t, nil
}

func decode(b []byte, i int) (*routing.Table, error) {
	var t routing.Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("read routing table shard %d: %w", i, err)
	}
	return &t, nil
}
