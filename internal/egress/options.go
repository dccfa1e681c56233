package egress

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
)

// Options are the egress flags, the same on the manager and the router: the chart
// passes one set of values to both, so the URL the manager accepted is judged by the
// same rules when the router dials it.
type Options struct {
	AllowCIDRs   string // CIDRs, addresses and host names drains may reach despite the defaults
	DenyCIDRs    string // extra denied CIDRs
	ServiceCIDRs string // the cluster's Service network
	PodCIDRs     string // the cluster's Pod network
}

// BindFlags registers --allow-cidrs, --deny-cidrs, --service-cidrs and --pod-cidrs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.AllowCIDRs, "allow-cidrs", "", "comma-separated CIDRs, addresses and host names (*.example.com allowed) drains may reach although the egress policy denies them by default; give the manager and the routers the same list")
	fs.StringVar(&o.DenyCIDRs, "deny-cidrs", "", "comma-separated CIDRs drains may not reach, beyond the defaults")
	fs.StringVar(&o.ServiceCIDRs, "service-cidrs", "", "the cluster's Service CIDRs (denied to drains)")
	fs.StringVar(&o.PodCIDRs, "pod-cidrs", "", "the cluster's Pod CIDRs (denied to drains)")
}

// Policy builds the policy from the flags. apiServer is the API server as a
// rest.Config's Host (empty when the binary talks to none): its address and port are
// always refused, its address is denied on other ports too (the control-plane node's
// kubelet and etcd live there).
func (o Options) Policy(ctx context.Context, apiServer string, r Resolver) (*Policy, error) {
	p := &Policy{Resolver: r}
	var err error
	if p.Allow, p.AllowHosts, err = ParseList(o.AllowCIDRs); err != nil {
		return nil, fmt.Errorf("--allow-cidrs: %w", err)
	}
	for _, f := range []struct{ name, value string }{
		{"--deny-cidrs", o.DenyCIDRs}, {"--service-cidrs", o.ServiceCIDRs}, {"--pod-cidrs", o.PodCIDRs},
	} {
		d, err := ParsePrefixes(f.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		p.Deny = append(p.Deny, d...)
	}
	if apiServer == "" {
		return p, nil
	}
	eps, err := Endpoints(ctx, apiServer, r)
	if err != nil {
		return nil, fmt.Errorf("API server address: %w", err)
	}
	p.DenyEndpoints = eps
	for _, ep := range eps {
		p.Deny = append(p.Deny, netip.PrefixFrom(ep.Addr(), ep.Addr().BitLen()))
	}
	return p, nil
}
