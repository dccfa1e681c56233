package drain

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/egress/egresstest"
)

// TestDialerMatrix runs the egress matrix the manager's URL check runs, at the dial
// site: net.Dialer resolves the name and hands each address with its port to
// Control, so that is what is checked here. An allowlisted name skips the check.
func TestDialerMatrix(t *testing.T) {
	for _, tt := range egresstest.Matrix() {
		if tt.URLOnly {
			continue
		}
		t.Run(tt.Name, func(t *testing.T) {
			u, err := url.Parse(tt.URL)
			if err != nil {
				t.Fatal(err)
			}
			port := u.Port()
			if port == "" {
				port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
			}
			d := &Dialer{Policy: tt.Policy}
			host := u.Hostname()
			var refused error
			switch {
			case isAddr(host):
				refused = d.CheckAddr(net.JoinHostPort(host, port))
			case d.Policy.HostAllowed(host):
			default:
				addrs, err := tt.Policy.Resolver.LookupNetIP(context.Background(), "ip", strings.ToLower(strings.TrimSuffix(host, ".")))
				if err != nil {
					refused = err // a dial that cannot resolve does not connect either
				}
				for _, a := range addrs {
					if err := d.CheckAddr(net.JoinHostPort(a.String(), port)); err != nil {
						refused = err
						if !errors.Is(err, ErrForbiddenAddress) {
							t.Fatalf("refusal %v is not ErrForbiddenAddress", err)
						}
					}
				}
			}
			if (refused == nil) != tt.Allowed {
				t.Fatalf("dial-time check of %s: %v, want allowed=%v", tt.URL, refused, tt.Allowed)
			}
		})
	}
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// TestDialerAllowHosts dials a real listener by name: an allowlisted host name may
// resolve to loopback, any other name may not, and an address is never a name.
func TestDialerAllowHosts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // the test is over
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close() // accepting was the point
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	prefixes, hosts, err := egress.ParseList(" 192.0.2.7 ,LocalHost.,*.corp.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(prefixes) != 1 || prefixes[0].String() != "192.0.2.7/32" || len(hosts) != 2 || hosts[0] != "localhost" {
		t.Fatalf("ParseList = %v %v", prefixes, hosts)
	}
	tests := []struct {
		name  string
		hosts []string
		addr  string
		ok    bool
	}{
		{name: "allowlisted name", hosts: hosts, addr: "localhost:" + port, ok: true},
		{name: "name not allowlisted", hosts: []string{"*.corp.example"}, addr: "localhost:" + port, ok: false},
		{name: "address is not a name", hosts: hosts, addr: "127.0.0.1:" + port, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dialer{Policy: egress.Policy{AllowHosts: tt.hosts}}
			c, err := d.DialContext(context.Background(), "tcp4", tt.addr)
			if c != nil {
				_ = c.Close() // connecting was the point
			}
			if (err == nil) != tt.ok {
				t.Fatalf("dial %s: %v, want ok=%v", tt.addr, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("dial %s failed for another reason: %v", tt.addr, err)
			}
		})
	}
}

// TestDialerRefusesAPIServerInAllowedRange: an admin who allowlists loopback (or a
// whole private network) still does not let drains reach the API server's port.
func TestDialerRefusesAPIServerInAllowedRange(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }() // the test is over
	ap := netip.MustParseAddrPort(l.Addr().String())
	p, err := egress.Options{AllowCIDRs: "127.0.0.0/8"}.Policy(context.Background(), "https://"+ap.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &Dialer{Policy: *p}
	c, err := d.DialContext(context.Background(), "tcp", ap.String())
	if c != nil {
		_ = c.Close()
	}
	if !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("dial API server %s: %v, want ErrForbiddenAddress", ap, err)
	}
}
