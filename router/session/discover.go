package session

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listers "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// EndpointSlicePeers finds the other replicas as the manager does: the ready (or
// still serving) endpoints of the router Service, minus this pod.
type EndpointSlicePeers struct {
	lister   listers.EndpointSliceNamespaceLister
	selector labels.Selector
	port     string
	// self is this pod's name and IP, left out of the list.
	selfName, selfIP string
}

// WatchEndpointSlices starts a watch of service's EndpointSlices in namespace until
// ctx ends and returns the peer list it keeps.
func WatchEndpointSlices(ctx context.Context, cs kubernetes.Interface, namespace, service, port, selfName, selfIP string,
) (*EndpointSlicePeers, error) {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: service})
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	inf := f.Discovery().V1().EndpointSlices()
	p := &EndpointSlicePeers{lister: inf.Lister().EndpointSlices(namespace), selector: sel, port: port,
		selfName: selfName, selfIP: selfIP}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return nil, fmt.Errorf("watch endpointslices of %s/%s: %w", namespace, service, context.Cause(ctx))
	}
	return p, nil
}

// Peers returns the base URLs of the other replicas.
func (p *EndpointSlicePeers) Peers() []string {
	eps, err := p.lister.List(p.selector)
	if err != nil {
		return nil
	}
	return peerURLs(eps, p.port, p.selfName, p.selfIP)
}

func peerURLs(eps []*discoveryv1.EndpointSlice, portName, selfName, selfIP string) []string {
	var out []string
	for _, s := range eps {
		var port int32
		for _, pt := range s.Ports {
			if pt.Name != nil && *pt.Name == portName && pt.Port != nil {
				port = *pt.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			serving := e.Conditions.Serving == nil || *e.Conditions.Serving
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			if !serving && !ready {
				continue
			}
			if e.TargetRef != nil && selfName != "" && e.TargetRef.Name == selfName {
				continue
			}
			for _, a := range e.Addresses {
				if a == selfIP {
					continue
				}
				out = append(out, "http://"+net.JoinHostPort(a, strconv.Itoa(int(port))))
				break
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
