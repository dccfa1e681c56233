package tablesource

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// TestHugeShardCountRefusedFirst: shard 0 claiming two billion shards is refused
// before a slice is made or a shard Secret fetched for them (issue 11 scenario 8:
// oversize lengths refused before allocation).
func TestHugeShardCountRefusedFirst(t *testing.T) {
	for _, head := range []string{`{"shards":2000000000}`, `{"shards":4097,"apps":[]}`} {
		shard0 := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "routes", Namespace: "ns"},
			Data: map[string][]byte{routing.SecretKey: []byte(head)}}
		s := &Secret{Client: fake.NewClientset(), Namespace: "ns", Name: "routes"}
		_, err := s.load(context.Background(), shard0)
		if err == nil || !strings.Contains(err.Error(), "at most") {
			t.Errorf("%s: err = %v, want a refusal of the count", head, err)
		}
		if n := s.Reads.Load(); n != 0 {
			t.Errorf("%s: %d shard Secrets fetched before the refusal", head, n)
		}
	}
}

// FuzzDecodeFile: a --routes file, however broken, is a clear error or a sealed,
// valid table.
func FuzzDecodeFile(f *testing.F) {
	f.Add([]byte(`{"apps":[{"id":"ns/a","tokens":[{"source":"app","token":"t.x"}],"drains":[{"id":"ns/d","token":"d.x","url":"syslog://h:1"}]}]}`))
	f.Add([]byte(`{"apps":[{"id":"a"},{"id":"a"}]}`))
	f.Add([]byte(`{"version":"v","shards":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tbl, err := DecodeFile(b)
		if err != nil {
			return
		}
		if tbl.Version == "" {
			t.Fatal("a decoded file table has no version")
		}
		if err := tbl.Validate(); err != nil {
			t.Fatalf("DecodeFile returned a table that does not validate: %v", err)
		}
	})
}
