package session

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestPeerURLs(t *testing.T) {
	ep := func(ip, pod string, ready, serving *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{ip}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod},
			Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving}}
	}
	slices := []*discoveryv1.EndpointSlice{
		{
			Ports: []discoveryv1.EndpointPort{{Name: ptr.To("syslog"), Port: ptr.To[int32](514)}, {Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
			Endpoints: []discoveryv1.Endpoint{
				ep("10.0.0.1", "router-a", nil, nil),                    // this pod, by name
				ep("10.0.0.2", "router-b", ptr.To(true), nil),           // ready
				ep("10.0.0.3", "router-c", ptr.To(false), ptr.To(true)), // terminating but serving: still has history
				ep("10.0.0.4", "router-d", ptr.To(false), ptr.To(false)),
				ep("10.0.0.9", "router-x", nil, nil), // this pod, by IP
			},
		},
		{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("metrics"), Port: ptr.To[int32](9090)}},
			Endpoints: []discoveryv1.Endpoint{ep("10.0.0.5", "router-e", nil, nil)}},
		{Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
			Endpoints: []discoveryv1.Endpoint{ep("10.0.0.2", "router-b", nil, nil)}}, // same pod in two slices
	}
	got := fmt.Sprint(peerURLs(slices, "http", "router-a", "10.0.0.9"))
	if want := "[http://10.0.0.2:8080 http://10.0.0.3:8080]"; got != want {
		t.Fatalf("peers %s, want %s", got, want)
	}
}
