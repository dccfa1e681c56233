package ingest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/message"
)

// TestOriginOf: a collector's pod and node headers become the batch's origin; a
// value that is not a Kubernetes name is left out and reported, the other kept.
func TestOriginOf(t *testing.T) {
	for _, c := range []struct {
		name, pod, node   string
		wantPod, wantNode string
		bad               bool
	}{
		{name: "both", pod: "web-7d9f8-x2kq4", node: "node-a.example", wantPod: "web-7d9f8-x2kq4", wantNode: "node-a.example"},
		{name: "pod only", pod: "web-1", wantPod: "web-1"},
		{name: "none"},
		{name: "bad pod", pod: "Web 1\r\n", node: "n1", wantNode: "n1", bad: true},
		{name: "bad node", pod: "p", node: strings.Repeat("n", 254), wantPod: "p", bad: true},
		{name: "quote", pod: `p"]`, bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.pod != "" {
				h.Set(wire.HeaderPod, c.pod)
			}
			if c.node != "" {
				h.Set(wire.HeaderNode, c.node)
			}
			o, bad := originOf(nil, h)
			pod, node := message.OriginNames(o)
			if string(pod) != c.wantPod || string(node) != c.wantNode || bad != c.bad {
				t.Errorf("originOf = %q, %q, bad %v; want %q, %q, %v", pod, node, bad, c.wantPod, c.wantNode, c.bad)
			}
			if c.wantPod == "" && c.wantNode == "" && len(o) != 0 {
				t.Errorf("an origin %q without names", o)
			}
		})
	}
}
