package egress

import (
	"context"
	"errors"
	"net/netip"
	"slices"
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

// FuzzParseList: whatever the flag value, ParseList never panics and what it returns
// parses back to itself (so the manager and the router, handed the same value, hold
// the same list).
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", " 10.1.2.3/8 , 192.168.1.7 ,fd00::/8", "::ffff:10.0.0.1", "Logs.Example.com.,*.corp.example", "*.", "a..b", "1.2.3.4/33", "[::1]:80", "*.*.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, h, err := ParseList(s)
		if err != nil {
			return
		}
		items := make([]string, 0, len(p)+len(h))
		for _, x := range p {
			if x != x.Masked() {
				t.Fatalf("prefix %s not masked", x)
			}
			items = append(items, x.String())
		}
		items = append(items, h...)
		p2, h2, err := ParseList(strings.Join(items, ","))
		if err != nil {
			t.Fatalf("re-parse %q: %v", items, err)
		}
		if !slices.Equal(p, p2) || !slices.Equal(h, h2) {
			t.Fatalf("re-parse changed %v %v into %v %v", p, h, p2, h2)
		}
	})
}
