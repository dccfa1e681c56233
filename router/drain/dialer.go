package drain

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/internal/egress"
)

// ErrForbiddenAddress is returned when a drain resolves to an address the router
// must not connect to.
var ErrForbiddenAddress = egress.ErrNotAllowed

// Dialer connects drains. The manager checks drain URLs when it accepts them, but DNS
// can change afterwards (rebinding), so the same egress policy, built from the same
// flags, is applied again to each address actually dialled, with its port: the API
// server's endpoint is refused even inside an allowlisted range.
type Dialer struct {
	// Policy is the egress policy; its zero value refuses every default-denied range.
	Policy egress.Policy
	// Timeout bounds connection setup (Logplex: 3 s).
	Timeout time.Duration
	// KeepAlive for TCP connections.
	KeepAlive time.Duration
}

// CheckAddr reports whether address ("ip:port", as net.Dialer hands it to Control
// after resolving) may be dialled.
func (d *Dialer) CheckAddr(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrForbiddenAddress, err)
	}
	return d.Policy.AddrAllowed(ap.Addr(), ap.Port())
}

func (d *Dialer) control(_, address string, _ syscall.RawConn) error {
	return d.CheckAddr(address)
}

// DialContext connects like net.Dialer after resolving, refusing forbidden addresses
// at connect time (the check runs on each address the resolver returned). A host name
// on the allowlist is trusted whatever it resolves to, as the manager trusts it.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	nd := net.Dialer{Timeout: timeout, KeepAlive: d.KeepAlive, Control: d.control}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if _, perr := netip.ParseAddr(host); perr != nil && d.Policy.HostAllowed(host) {
			nd.Control = nil
		}
	}
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dial drain: %w", err)
	}
	return c, nil
}
