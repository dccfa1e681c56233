package drain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned when a drain resolves to an address the router
// must not connect to.
var ErrForbiddenAddress = errors.New("drain address not allowed")

// Dialer connects drains. The manager checks drain URLs when it accepts them, but DNS
// can change afterwards, so the check is repeated on the address actually dialled:
// loopback, link-local, private, unspecified and multicast addresses are refused
// unless an allowlisted prefix covers them.
type Dialer struct {
	// Allow lists prefixes that are reachable even though they are internal.
	Allow []netip.Prefix
	// AllowHosts lists host names ("logs.internal", or "*.corp.example" for every name
	// under a suffix) that may resolve to internal addresses: the admin trusts these
	// names, as the manager's --allow-cidrs does.
	AllowHosts []string
	// Timeout bounds connection setup (Logplex: 3 s).
	Timeout time.Duration
	// KeepAlive for TCP connections.
	KeepAlive time.Duration
}

// Check reports whether ip may be dialled.
func (d *Dialer) Check(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, p := range d.Allow {
		if p.Contains(ip) {
			return nil
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || !ip.IsValid() ||
		isSpecial(ip) {
		return fmt.Errorf("%w: %s is internal", ErrForbiddenAddress, ip)
	}
	return nil
}

// Ranges outside the standard library's predicates that still lead inside: carrier-
// grade NAT (RFC 6598), "this network" (RFC 791), benchmarking (RFC 2544), reserved.
var special = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64 can reach any IPv4 address
}

func isSpecial(ip netip.Addr) bool {
	for _, p := range special {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (d *Dialer) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbiddenAddress, err)
	}
	return d.Check(ap.Addr())
}

// DialContext connects like net.Dialer after resolving, refusing forbidden addresses
// at connect time (the check runs on each address the resolver returned).
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	nd := net.Dialer{Timeout: timeout, KeepAlive: d.KeepAlive, Control: d.control}
	if host, _, err := net.SplitHostPort(addr); err == nil && d.hostAllowed(host) {
		nd.Control = nil
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial drain: %w", err)
	}
	return c, nil
}

func (d *Dialer) hostAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range d.AllowHosts {
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// ParseAllow parses the entries of the --allow-cidrs flag, the same list the manager
// takes: CIDR prefixes, single addresses, and host names (exact or "*.suffix").
func ParseAllow(list []string) ([]netip.Prefix, []string, error) {
	var prefixes []netip.Prefix
	var hosts []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			prefixes = append(prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		name := strings.TrimSuffix(strings.ToLower(s), ".")
		if strings.ContainsAny(name, "/:") || strings.Contains(strings.TrimPrefix(name, "*."), "*") || name == "" {
			return nil, nil, fmt.Errorf("parse allowlist entry %q: not a CIDR, an address or a host name", s)
		}
		hosts = append(hosts, name)
	}
	return prefixes, hosts, nil
}
