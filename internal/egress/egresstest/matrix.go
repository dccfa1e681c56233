// Package egresstest holds the one SSRF test matrix both call sites of the egress
// policy run: the manager's URL check and the router's dial-time check. A case added
// here is asserted at both, so the two cannot drift apart again.
package egresstest

import (
	"context"
	"errors"
	"net/netip"

	"github.com/kubeplex/kubeplex/internal/egress"
)

// Hosts answers from a fixed table, like /etc/hosts.
type Hosts map[string][]netip.Addr

// LookupNetIP implements egress.Resolver.
func (h Hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

// Addrs parses addresses, panicking on a typo in a test table.
func Addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// Case is one drain URL under one policy.
type Case struct {
	Name    string
	Policy  egress.Policy
	URL     string
	Allowed bool
	// Reason is a substring of the manager's refusal.
	Reason string
	// URLOnly cases are refused while the URL is parsed (no port, a zone): a router
	// never gets as far as dialling them.
	URLOnly bool
}

// Matrix is issue 4's SSRF matrix, the encodings that hide a denied address
// (IPv4-mapped IPv6, NAT64, 6to4, a name with one good and one bad address) and the
// ranges the router once missed (192.0.0.0/24, the API server, the cluster's CIDRs).
func Matrix() []Case {
	res := Hosts{
		"internal.example":  Addrs("10.1.2.3"),
		"public.example":    Addrs("203.0.113.10"),
		"mixed.example":     Addrs("203.0.113.10", "192.168.1.1"),
		"metadata.example":  Addrs("169.254.169.254"),
		"logs.corp.example": Addrs("10.9.9.9"),
		"a.logs.example":    Addrs("10.9.9.8"),
		"kube.example":      Addrs("10.96.0.1"),
		"rebind.example":    Addrs("192.0.0.170"),
		"cluster.example":   Addrs("203.0.114.9"),
	}
	base := egress.Policy{
		Resolver: res,
		Deny: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("198.51.100.0/24"),
			netip.MustParsePrefix("203.0.114.0/24")},
		DenyEndpoints: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:443"), netip.MustParseAddrPort("127.0.0.1:6443")},
	}
	allowing := base
	allowing.Allow = []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:1::/64"),
	}
	allowing.AllowHosts = []string{"logs.corp.example", "*.logs.example"}

	return []Case{
		{Name: "loopback v4", Policy: base, URL: "syslog://127.0.0.1:514", Reason: "loopback"},
		{Name: "loopback v4 other", Policy: base, URL: "syslog://127.8.9.10:514", Reason: "loopback"},
		{Name: "loopback v6", Policy: base, URL: "syslog://[::1]:514", Reason: "loopback"},
		{Name: "rfc1918 10/8", Policy: base, URL: "syslog://10.0.0.1:514", Reason: "RFC 1918"},
		{Name: "rfc1918 172.16/12", Policy: base, URL: "syslog://172.16.0.1:514", Reason: "RFC 1918"},
		{Name: "rfc1918 192.168/16", Policy: base, URL: "https://192.168.1.1/logs", Reason: "RFC 1918"},
		{Name: "cloud metadata", Policy: base, URL: "http://169.254.169.254/latest/meta-data", Reason: "link-local"},
		{Name: "link-local v6", Policy: base, URL: "syslog://[fe80::1]:514", Reason: "link-local"},
		{Name: "ula", Policy: base, URL: "syslog://[fc00::1]:514", Reason: "RFC 4193"},
		{Name: "ula fd", Policy: base, URL: "syslog://[fd12:3456::1]:514", Reason: "RFC 4193"},
		{Name: "unspecified", Policy: base, URL: "syslog://0.0.0.0:514", Reason: "this-network"},
		{Name: "unspecified v6", Policy: base, URL: "syslog://[::]:514", Reason: "unspecified"},
		{Name: "cgnat", Policy: base, URL: "syslog://100.64.0.1:514", Reason: "RFC 6598"},
		{Name: "ietf protocol assignments", Policy: base, URL: "syslog://192.0.0.170:514", Reason: "IETF protocol"},
		{Name: "benchmarking", Policy: base, URL: "syslog://198.18.0.1:514", Reason: "benchmarking"},
		{Name: "multicast", Policy: base, URL: "syslog://224.0.0.1:514", Reason: "multicast"},
		{Name: "reserved", Policy: base, URL: "syslog://240.0.0.1:514", Reason: "reserved"},
		{Name: "broadcast", Policy: base, URL: "syslog://255.255.255.255:514", Reason: "reserved"},
		{Name: "v4-mapped loopback", Policy: base, URL: "syslog://[::ffff:127.0.0.1]:514", Reason: "loopback"},
		{Name: "nat64 metadata", Policy: base, URL: "http://[64:ff9b::a9fe:a9fe]/", Reason: "link-local"},
		{Name: "6to4 private", Policy: base, URL: "http://[2002:c0a8:0101::1]/", Reason: "RFC 1918"},
		{Name: "service cidr", Policy: base, URL: "https://10.100.0.7/", Reason: "denied in this cluster"},
		{Name: "extra deny", Policy: base, URL: "https://198.51.100.7/", Reason: "denied in this cluster"},
		{Name: "api server", Policy: base, URL: "https://10.96.0.1/", Reason: "API server"},
		{Name: "name to private", Policy: base, URL: "syslog+tls://internal.example:6514", Reason: "resolves to 10.1.2.3"},
		{Name: "name to metadata", Policy: base, URL: "http://metadata.example/", Reason: "link-local"},
		{Name: "name to api server", Policy: base, URL: "https://kube.example/", Reason: "API server"},
		{Name: "name rebound to 192.0.0.0/24", Policy: base, URL: "syslog://rebind.example:514", Reason: "IETF protocol"},
		{Name: "name rebound to a denied cluster cidr", Policy: base, URL: "syslog://cluster.example:514", Reason: "denied in this cluster"},
		{Name: "name with one private address", Policy: base, URL: "https://mixed.example/", Reason: "192.168.1.1"},
		{Name: "public address", Policy: base, URL: "syslog://203.0.113.10:514", Allowed: true},
		{Name: "public name", Policy: base, URL: "https://public.example/logs", Allowed: true},
		{Name: "public v6", Policy: base, URL: "syslog://[2001:db8::1]:514", Allowed: true},
		{Name: "decimal-looking host", Policy: base, URL: "http://2130706433/", Reason: "resolve"},

		{Name: "allowlisted loopback", Policy: allowing, URL: "syslog://127.0.0.1:514", Allowed: true},
		{Name: "allowlisted service cidr", Policy: allowing, URL: "syslog://10.100.0.7:514", Allowed: true},
		{Name: "api server despite allowlist", Policy: allowing, URL: "https://10.96.0.1:443/", Reason: "API server"},
		{Name: "api server port despite allowlist", Policy: allowing, URL: "https://127.0.0.1:6443/", Reason: "API server"},
		{Name: "api server ip other port", Policy: allowing, URL: "syslog://127.0.0.1:6514", Allowed: true},
		{Name: "allowlisted host", Policy: allowing, URL: "syslog://logs.corp.example:514", Allowed: true},
		{Name: "allowlisted host, other case", Policy: allowing, URL: "syslog://Logs.Corp.Example.:514", Allowed: true},
		{Name: "allowlisted wildcard", Policy: allowing, URL: "syslog://a.logs.example:514", Allowed: true},
		{Name: "wildcard does not match apex", Policy: allowing, URL: "syslog://logs.example:514", Reason: "resolve"},
		{Name: "not allowlisted private", Policy: allowing, URL: "syslog://10.1.2.3:514", Reason: "RFC 1918"},
		{Name: "allowlisted v6 range", Policy: allowing, URL: "syslog://[fd00:1::5]:514", Allowed: true},
		{Name: "outside allowlisted v6 range", Policy: allowing, URL: "syslog://[fd00:2::5]:514", Reason: "RFC 4193"},

		{Name: "syslog without port", Policy: base, URL: "syslog://203.0.113.10", Reason: "port", URLOnly: true},
		{Name: "zone", Policy: base, URL: "syslog://[fe80::1%25eth0]:514", Reason: "zone", URLOnly: true},
		{Name: "unknown name", Policy: base, URL: "syslog://nowhere.example:514", Reason: "resolve"},
	}
}
