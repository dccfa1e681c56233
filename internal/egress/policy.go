// Package egress decides where a drain may connect: kubeplex's defence against
// server-side request forgery. A LogDrain is written by a namespace user, but the
// router dials it from inside the cluster, so by default a drain may not point at
// loopback, link-local (cloud metadata at 169.254.169.254), private (RFC 1918, RFC 4193)
// ranges, the cluster's Service and Pod networks or the API server. Cluster admins
// open specific CIDRs or host names with an allowlist.
//
// The same Policy is applied twice: by the manager when it accepts a drain URL (an
// early, visible answer in the LogDrain's status) and by the router on the address it
// actually dials (a DNS answer can change in between: rebinding). Both build it from
// the same flags (Options), so the two checks cannot disagree.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Resolver looks up the addresses of a host name (net.DefaultResolver fits).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy is the URL policy. The zero value refuses every default-denied range and
// resolves names with net.DefaultResolver.
type Policy struct {
	// Allow opens these prefixes even where a deny rule matches.
	Allow []netip.Prefix
	// AllowHosts opens these host names (exact, or "*.example.com" for subdomains)
	// whatever they resolve to.
	AllowHosts []string
	// Deny adds prefixes to the default deny list: the cluster's Service and Pod
	// CIDRs, the API server's addresses.
	Deny []netip.Prefix
	// DenyEndpoints are refused even when an allow rule matches: the API server's own
	// address and port. An admin who allowlists a whole network (say 10.0.0.0/8 for an
	// internal log host) must still not let drains write to the API server.
	DenyEndpoints []netip.AddrPort
	// Resolver resolves host names; nil means net.DefaultResolver.
	Resolver Resolver
}

const rfc1918 = "private (RFC 1918)"

// defaultDeny are the ranges no drain may reach unless allowlisted.
var defaultDeny = []struct {
	prefix netip.Prefix
	name   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), rfc1918},
	{netip.MustParsePrefix("172.16.0.0/12"), rfc1918},
	{netip.MustParsePrefix("192.168.0.0/16"), rfc1918},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (RFC 6598)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (RFC 4193)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// ErrNotAllowed matches every *NotAllowedError (errors.Is).
var ErrNotAllowed = errors.New("drain address not allowed")

// NotAllowedError says why a URL was refused. Its text names the host and the rule,
// never the URL's userinfo.
type NotAllowedError struct {
	Host   string
	Addr   netip.Addr
	Reason string
}

func (e *NotAllowedError) Error() string {
	hint := "; a cluster admin can allowlist it (--allow-cidrs)"
	if e.Reason == reasonAPIServer {
		hint = ""
	}
	if e.Addr.IsValid() && e.Addr.String() != e.Host {
		return fmt.Sprintf("host %s resolves to %s, which is %s%s", e.Host, e.Addr, e.Reason, hint)
	}
	return fmt.Sprintf("host %s is %s%s", e.Host, e.Reason, hint)
}

// Is makes errors.Is(err, ErrNotAllowed) hold.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

const reasonAPIServer = "the Kubernetes API server"

// ResolveError means a host name could not be resolved: possibly transient.
type ResolveError struct {
	Host string
	Err  error
}

func (e *ResolveError) Error() string { return fmt.Sprintf("resolve host %s: %v", e.Host, e.Err) }
func (e *ResolveError) Unwrap() error { return e.Err }

// Check parses raw and applies the policy to its host. It returns the parsed URL on
// success; errors are *NotAllowedError, *ResolveError or a parse error whose text
// does not repeat the URL (it may hold a password).
func (p *Policy) Check(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, userinfo included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parse url: %w", err)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("parse url: no host")
	}
	port, err := defaultPort(u)
	if err != nil {
		return nil, err
	}
	if err := p.CheckHost(ctx, host, port); err != nil {
		return nil, err
	}
	return u, nil
}

func defaultPort(u *url.URL) (uint16, error) {
	if s := u.Port(); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("parse url: invalid port %q", s)
		}
		return uint16(n), nil
	}
	switch u.Scheme {
	case "https", "otlp+https", "otlp+grpcs":
		return 443, nil
	case "http":
		return 80, nil
	case "otlp+http":
		return 4318, nil // the OTLP/HTTP port (OpenTelemetry protocol specification)
	case "otlp+grpc":
		return 4317, nil
	case "syslog", "syslog+tls":
		return 0, errors.New("parse url: syslog urls need a port")
	}
	return 0, fmt.Errorf("parse url: unsupported scheme %q", u.Scheme)
}

// CheckHost applies the policy to a host (name or literal address) and port.
func (p *Policy) CheckHost(ctx context.Context, host string, port uint16) error {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if a.Zone() != "" {
			return &NotAllowedError{Host: host, Reason: "an address with a zone"}
		}
		addrs = []netip.Addr{a}
	} else {
		if p.HostAllowed(host) {
			return nil
		}
		r := p.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		addrs, err = r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return &ResolveError{Host: host, Err: err}
		}
		if len(addrs) == 0 {
			return &ResolveError{Host: host, Err: errors.New("no addresses")}
		}
	}
	// Every address must pass: a name with one public and one private address could
	// send the router to the private one.
	for _, a := range addrs {
		if reason := p.refuse(a, port); reason != "" {
			return &NotAllowedError{Host: host, Addr: a.Unmap(), Reason: reason}
		}
	}
	return nil
}

// AddrAllowed applies the policy to one resolved address and port, as a router does
// at dial time.
func (p *Policy) AddrAllowed(a netip.Addr, port uint16) error {
	if reason := p.refuse(a, port); reason != "" {
		return &NotAllowedError{Host: a.Unmap().String(), Addr: a.Unmap(), Reason: reason}
	}
	return nil
}

// HostAllowed reports whether host is allowlisted by name: the admin trusts it
// whatever it resolves to.
func (p *Policy) HostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.AllowHosts {
		if h == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(h, "*"); ok && strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// refuse returns why a may not be dialled, or "".
func (p *Policy) refuse(a netip.Addr, port uint16) string {
	a = a.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	if embedded, ok := embeddedIPv4(a); ok {
		if r := p.refuse(embedded, port); r != "" {
			return r + " (embedded in " + a.String() + ")"
		}
	}
	for _, ep := range p.DenyEndpoints {
		if ep.Addr().Unmap() == a && (ep.Port() == 0 || ep.Port() == port) {
			return reasonAPIServer
		}
	}
	if slices.ContainsFunc(p.Allow, func(pr netip.Prefix) bool { return pr.Contains(a) }) {
		return ""
	}
	for _, pr := range p.Deny {
		if pr.Contains(a) {
			return "in " + pr.String() + ", denied in this cluster"
		}
	}
	for _, d := range defaultDeny {
		if d.prefix.Contains(a) {
			return "in " + d.prefix.String() + ", " + d.name
		}
	}
	if a == netip.MustParseAddr("255.255.255.255") {
		return "broadcast"
	}
	return ""
}

// NAT64 (RFC 6052) and 6to4 (RFC 3056) addresses carry an IPv4 address a gateway may
// forward to; judge them by that address too.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

// Endpoints returns the addresses and port of a server given as a URL or host[:port]
// (a rest.Config's Host): the API server, which the policy refuses outright.
func Endpoints(ctx context.Context, server string, r Resolver) ([]netip.AddrPort, error) {
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	u, err := url.Parse(server)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parse server address: %w", err)
	}
	port := uint16(443)
	if u.Scheme == "http" {
		port = 80
	}
	if s := u.Port(); s != "" {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse server port: %w", err)
		}
		port = uint16(n)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if r == nil {
			r = net.DefaultResolver
		}
		if addrs, err = r.LookupNetIP(ctx, "ip", u.Hostname()); err != nil {
			return nil, fmt.Errorf("resolve server address: %w", err)
		}
	}
	out := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		out[i] = netip.AddrPortFrom(a.Unmap(), port)
	}
	return out, nil
}
