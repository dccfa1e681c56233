package health

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// maxReportBytes bounds a router's /status answer (a report for 10,000 drains is ~2 MB).
const maxReportBytes = 32 << 20

// Poller asks every router for GET /status each Interval, folds the answers into
// Store and calls Notify with the drains that changed. It runs only on the leader.
type Poller struct {
	Store    *Store
	Discover func(ctx context.Context) ([]string, error)
	Interval time.Duration
	Client   *http.Client
	Notify   func(drainIDs []string)
	Log      logr.Logger
	Errors   prometheus.Counter
}

// NeedLeaderElection: only the leader writes status.
func (p *Poller) NeedLeaderElection() bool { return true }

// Start polls until ctx ends.
func (p *Poller) Start(ctx context.Context) error {
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll runs one round.
func (p *Poller) Poll(ctx context.Context) {
	urls, err := p.Discover(ctx)
	if err != nil {
		p.Log.Error(err, "discover routers")
		return
	}
	reports := make([]*routing.RouterStatus, len(urls))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, u := range urls {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rep, err := p.fetch(ctx, u)
			if err != nil {
				if p.Errors != nil {
					p.Errors.Inc()
				}
				p.Log.Info("router status unavailable", "url", u, "error", err.Error())
				return
			}
			if rep.Router == "" {
				rep.Router = u
			}
			reports[i] = rep
		})
	}
	wg.Wait()
	var got []routing.RouterStatus
	for _, r := range reports {
		if r != nil {
			got = append(got, *r)
		}
	}
	if changed := p.Store.Update(time.Now(), got); len(changed) > 0 && p.Notify != nil {
		slices.Sort(changed)
		p.Notify(changed)
	}
}

func (p *Poller) fetch(ctx context.Context, u string) (*routing.RouterStatus, error) {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build status request: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get router status: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get router status: %s", resp.Status)
	}
	var rep routing.RouterStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReportBytes)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode router status: %w", err)
	}
	return &rep, nil
}

// EndpointSliceDiscovery finds router pods from the EndpointSlices of the router
// Service: every ready endpoint address, on the port named PortName (or the only
// port). Static URLs (--router-status-urls) are added as they are.
type EndpointSliceDiscovery struct {
	Reader    client.Reader
	Namespace string
	Service   string // "" turns EndpointSlice discovery off
	PortName  string
	Path      string
	Static    []string
}

// +kubebuilder:rbac:groups=discovery.k8s.io,namespace=kubeplex-system,resources=endpointslices,verbs=list

// Discover returns the status URLs of the routers.
func (d *EndpointSliceDiscovery) Discover(ctx context.Context) ([]string, error) {
	out := slices.Clone(d.Static)
	if d.Service == "" {
		return out, nil
	}
	var l discoveryv1.EndpointSliceList
	if err := d.Reader.List(ctx, &l, client.InNamespace(d.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: d.Service}); err != nil {
		return out, fmt.Errorf("list router endpointslices: %w", err)
	}
	path := d.Path
	if path == "" {
		path = "/status"
	}
	seen := map[string]bool{}
	for _, s := range l.Items {
		port := int32(0)
		for _, p := range s.Ports {
			if p.Port != nil && (p.Name != nil && *p.Name == d.PortName || len(s.Ports) == 1) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				u := "http://" + net.JoinHostPort(a, strconv.Itoa(int(port))) + path
				if !seen[u] {
					seen[u] = true
					out = append(out, u)
				}
			}
		}
	}
	return out, nil
}
