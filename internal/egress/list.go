package egress

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseList parses a comma-separated list of CIDRs, IP addresses and host names (as
// given to --allow-cidrs) into prefixes and host names.
func ParseList(s string) (prefixes []netip.Prefix, hosts []string, err error) {
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, perr := netip.ParsePrefix(item); perr == nil {
			prefixes = append(prefixes, p.Masked())
			continue
		}
		if a, aerr := netip.ParseAddr(item); aerr == nil {
			prefixes = append(prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		h := strings.ToLower(strings.TrimSuffix(item, "."))
		if a, aerr := netip.ParseAddr(h); aerr == nil {
			// "10.0.0.1." is an address, not a name that happens to look like one.
			prefixes = append(prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if !validHostPattern(h) {
			return nil, nil, fmt.Errorf("parse address list: %q is neither a CIDR, an IP address nor a host name", item)
		}
		hosts = append(hosts, h)
	}
	return prefixes, hosts, nil
}

// ParsePrefixes parses a comma-separated list of CIDRs or addresses (no host names).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	p, h, err := ParseList(s)
	if err != nil {
		return nil, err
	}
	if len(h) > 0 {
		return nil, fmt.Errorf("parse CIDR list: %q is not a CIDR or IP address", h[0])
	}
	return p, nil
}

func validHostPattern(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !hostPatternChar(c) {
				return false
			}
		}
	}
	return true
}

func hostPatternChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
