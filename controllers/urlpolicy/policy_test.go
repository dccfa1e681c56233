package urlpolicy

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// hostsResolver answers from a fixed table, like /etc/hosts.
type hostsResolver map[string][]netip.Addr

func (h hostsResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// TestCheckMatrix is issue 4's SSRF matrix plus the encodings that hide a denied
// address (IPv4-mapped IPv6, NAT64, 6to4, a name with one good and one bad address).
func TestCheckMatrix(t *testing.T) {
	res := hostsResolver{
		"internal.example":  addrs("10.1.2.3"),
		"public.example":    addrs("203.0.113.10"),
		"mixed.example":     addrs("203.0.113.10", "192.168.1.1"),
		"metadata.example":  addrs("169.254.169.254"),
		"logs.corp.example": addrs("10.9.9.9"),
		"a.logs.example":    addrs("10.9.9.8"),
		"kube.example":      addrs("10.96.0.1"),
	}
	base := Policy{
		Resolver:      res,
		Deny:          []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("198.51.100.0/24")},
		DenyEndpoints: []netip.AddrPort{netip.MustParseAddrPort("10.96.0.1:443"), netip.MustParseAddrPort("127.0.0.1:6443")},
	}
	allowing := base
	allowing.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:1::/64")}
	allowing.AllowHosts = []string{"logs.corp.example", "*.logs.example"}

	tests := []struct {
		name    string
		policy  Policy
		url     string
		allowed bool
		reason  string // substring of the refusal
	}{
		{"loopback v4", base, "syslog://127.0.0.1:514", false, "loopback"},
		{"loopback v4 other", base, "syslog://127.8.9.10:514", false, "loopback"},
		{"loopback v6", base, "syslog://[::1]:514", false, "loopback"},
		{"rfc1918 10/8", base, "syslog://10.0.0.1:514", false, "RFC 1918"},
		{"rfc1918 172.16/12", base, "syslog://172.16.0.1:514", false, "RFC 1918"},
		{"rfc1918 192.168/16", base, "https://192.168.1.1/logs", false, "RFC 1918"},
		{"cloud metadata", base, "http://169.254.169.254/latest/meta-data", false, "link-local"},
		{"link-local v6", base, "syslog://[fe80::1]:514", false, "link-local"},
		{"ula", base, "syslog://[fc00::1]:514", false, "RFC 4193"},
		{"ula fd", base, "syslog://[fd12:3456::1]:514", false, "RFC 4193"},
		{"unspecified", base, "syslog://0.0.0.0:514", false, "this-network"},
		{"v4-mapped loopback", base, "syslog://[::ffff:127.0.0.1]:514", false, "loopback"},
		{"nat64 metadata", base, "http://[64:ff9b::a9fe:a9fe]/", false, "link-local"},
		{"6to4 private", base, "http://[2002:c0a8:0101::1]/", false, "RFC 1918"},
		{"service cidr", base, "https://10.100.0.7/", false, "denied in this cluster"},
		{"extra deny", base, "https://198.51.100.7/", false, "denied in this cluster"},
		{"api server", base, "https://10.96.0.1/", false, "API server"},
		{"name to private", base, "syslog+tls://internal.example:6514", false, "resolves to 10.1.2.3"},
		{"name to metadata", base, "http://metadata.example/", false, "link-local"},
		{"name with one private address", base, "https://mixed.example/", false, "192.168.1.1"},
		{"public address", base, "syslog://203.0.113.10:514", true, ""},
		{"public name", base, "https://public.example/logs", true, ""},
		{"public v6", base, "syslog://[2001:db8::1]:514", true, ""},
		{"decimal-looking host", base, "http://2130706433/", false, "resolve"},

		{"allowlisted loopback", allowing, "syslog://127.0.0.1:514", true, ""},
		{"allowlisted service cidr", allowing, "syslog://10.100.0.7:514", true, ""},
		{"api server despite allowlist", allowing, "https://10.96.0.1:443/", false, "API server"},
		{"api server port despite allowlist", allowing, "https://127.0.0.1:6443/", false, "API server"},
		{"api server ip other port", allowing, "syslog://127.0.0.1:6514", true, ""},
		{"allowlisted host", allowing, "syslog://logs.corp.example:514", true, ""},
		{"allowlisted wildcard", allowing, "syslog://a.logs.example:514", true, ""},
		{"wildcard does not match apex", allowing, "syslog://logs.example:514", false, "resolve"},
		{"not allowlisted private", allowing, "syslog://10.1.2.3:514", false, "RFC 1918"},
		{"allowlisted v6 range", allowing, "syslog://[fd00:1::5]:514", true, ""},
		{"outside allowlisted v6 range", allowing, "syslog://[fd00:2::5]:514", false, "RFC 4193"},

		{"syslog without port", base, "syslog://203.0.113.10", false, "port"},
		{"zone", base, "syslog://[fe80::1%25eth0]:514", false, "zone"},
		{"unknown name", base, "syslog://nowhere.example:514", false, "resolve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.policy.Check(context.Background(), tt.url)
			if tt.allowed {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want allowed", tt.url, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) allowed, want refused (%s)", tt.url, tt.reason)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Check(%s) = %q, want it to mention %q", tt.url, err, tt.reason)
			}
		})
	}
}

func TestErrorsNeverRepeatUserinfo(t *testing.T) {
	p := Policy{Resolver: hostsResolver{}}
	for _, raw := range []string{
		"http://user:hunter2secret@10.0.0.1/",
		"http://user:hunter2secret@[::1/",
		"http://user:hunter2secret@nowhere.example/",
		"http://user:hunter2secret@203.0.113.1:99999/",
		"http://user:hunter2secret@%zz/",
	} {
		_, err := p.Check(context.Background(), raw)
		if err == nil {
			t.Fatalf("Check(%q) allowed", raw)
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("error %q repeats the password", err)
		}
	}
}

func TestErrorKinds(t *testing.T) {
	p := Policy{Resolver: hostsResolver{"private.example": addrs("10.0.0.1")}}
	_, err := p.Check(context.Background(), "syslog://private.example:514")
	var na *NotAllowedError
	if !errors.As(err, &na) || na.Addr != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("private name: %v, want NotAllowedError for 10.0.0.1", err)
	}
	_, err = p.Check(context.Background(), "syslog://gone.example:514")
	var re *ResolveError
	if !errors.As(err, &re) || re.Host != "gone.example" {
		t.Errorf("unknown name: %v, want ResolveError", err)
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in       string
		prefixes []string
		hosts    []string
		err      bool
	}{
		{"", nil, nil, false},
		{"127.0.0.0/8", []string{"127.0.0.0/8"}, nil, false},
		{" 10.1.2.3/8 , 192.168.1.7 ,fd00::/8", []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8"}, nil, false},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}, nil, false},
		{"Logs.Example.com.,*.corp.example", nil, []string{"logs.example.com", "*.corp.example"}, false},
		{"10.0.0.0/33", nil, nil, true},
		{"bad host!", nil, nil, true},
		{"*.", nil, nil, true},
	}
	for _, tt := range tests {
		p, h, err := ParseList(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseList(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if tt.err {
			continue
		}
		var ps []string
		for _, x := range p {
			ps = append(ps, x.String())
		}
		if strings.Join(ps, ",") != strings.Join(tt.prefixes, ",") || strings.Join(h, ",") != strings.Join(tt.hosts, ",") {
			t.Errorf("ParseList(%q) = %v %v, want %v %v", tt.in, ps, h, tt.prefixes, tt.hosts)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/8,example.com"); err == nil {
		t.Error("ParsePrefixes accepted a host name")
	}
}

// FuzzCheck: whatever the URL, Check never panics, never lets a default-denied
// literal address through, and never repeats a password in its error.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"syslog://127.0.0.1:514", "http://u:p@[::ffff:10.0.0.1]/", "https://[64:ff9b::7f00:1]/", "syslog://[fe80::1%25x]:1", "http://%41:8080/"} {
		f.Add(s)
	}
	p := Policy{Resolver: hostsResolver{}}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := p.Check(context.Background(), "http://secretuser:fuzzpassword@"+raw)
		if err != nil {
			if strings.Contains(err.Error(), "fuzzpassword") {
				t.Fatalf("error repeats the password: %v", err)
			}
			return
		}
		a, perr := netip.ParseAddr(strings.Trim(u.Hostname(), "[]"))
		if perr != nil {
			return // a name: the resolver knows none, so it cannot have passed
		}
		a = a.Unmap()
		for _, d := range defaultDeny {
			if d.prefix.Contains(a) {
				t.Fatalf("allowed %s in %s", a, d.prefix)
			}
		}
	})
}
