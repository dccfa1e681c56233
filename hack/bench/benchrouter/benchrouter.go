// Package benchrouter starts sets of router processes for the benchmark harnesses
// (hack/bench/scale, hack/bench/sessions): the table in a file, every listener on a
// free loopback port, the replicas optionally told about each other (--peers), and
// the helpers the harnesses measure them with (their CPU time, a restart on the same
// ports, a stop).
package benchrouter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// Options describe a set of routers.
type Options struct {
	// Bin is the router binary.
	Bin string
	// Table is written to a file every router reads (--routes); it is sealed.
	Table *routing.Table
	// Syslog also opens a syslog TCP listener on each router.
	Syslog bool
	// Peers gives each router the others' base URLs (--peers).
	Peers bool
	// LogLevel is --log-level ["error"].
	LogLevel string
	// Args are added to every router's command line; "{self}" in one becomes that
	// router's base URL (for --self-url).
	Args []string
	// Extra, when set, returns more arguments for router i (a debug address).
	Extra func(i int) ([]string, error)
}

// Router is one started router.
type Router struct {
	Cmd *exec.Cmd
	// Args is its command line (for Restart).
	Args []string
	// HTTP, Admin and Syslog are its listen addresses (Syslog empty without
	// Options.Syslog).
	HTTP, Admin, Syslog string
}

// Base is the router's ingest base URL.
func (r *Router) Base() string { return "http://" + r.HTTP }

// Set is a set of started routers.
type Set struct {
	Routers []*Router
	bin     string
	dir     string
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }() // only reserved the port
	return l.Addr().String(), nil
}

// Start runs n routers and returns once every one answers /readyz.
func Start(ctx context.Context, n int, o Options) (*Set, error) {
	dir, err := os.MkdirTemp("", "kubeplex-bench-routers-")
	if err != nil {
		return nil, err
	}
	s := &Set{bin: o.Bin, dir: dir}
	o.Table.Seal()
	b, err := json.Marshal(o.Table)
	if err != nil {
		return nil, err
	}
	routes := filepath.Join(dir, "routes.json")
	if err := os.WriteFile(routes, b, 0o600); err != nil {
		return nil, err
	}
	if o.LogLevel == "" {
		o.LogLevel = "error"
	}
	for range n {
		r := &Router{}
		if r.HTTP, err = FreeAddr(); err == nil {
			r.Admin, err = FreeAddr()
		}
		if err == nil && o.Syslog {
			r.Syslog, err = FreeAddr()
		}
		if err != nil {
			return nil, err
		}
		s.Routers = append(s.Routers, r)
	}
	for i, r := range s.Routers {
		// Every listener on a free port: the router's default admin :9090 may be
		// taken by another router on the machine.
		r.Args = []string{"--routes", routes, "--http-addr", r.HTTP, "--admin-addr", r.Admin, "--allow-cidrs", "127.0.0.0/8",
			"--name", fmt.Sprintf("bench-%d", i), "--log-level", o.LogLevel}
		if r.Syslog != "" {
			r.Args = append(r.Args, "--syslog-tcp-addr", r.Syslog)
		}
		if o.Peers && n > 1 {
			var others []string
			for j, x := range s.Routers {
				if j != i {
					others = append(others, x.Base())
				}
			}
			r.Args = append(r.Args, "--peers", strings.Join(others, ","))
		}
		for _, a := range o.Args {
			r.Args = append(r.Args, strings.ReplaceAll(a, "{self}", r.Base()))
		}
		if o.Extra != nil {
			more, err := o.Extra(i)
			if err != nil {
				s.Stop()
				return nil, err
			}
			r.Args = append(r.Args, more...)
		}
		if err := r.start(o.Bin); err != nil {
			s.Stop()
			return nil, err
		}
	}
	for _, r := range s.Routers {
		if err := WaitReady(ctx, "http://"+r.Admin+"/readyz", time.Minute); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

func (r *Router) start(bin string) error {
	cmd := exec.Command(bin, r.Args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start router: %w", err)
	}
	r.Cmd = cmd
	return nil
}

// WaitReady polls url until it answers 200, ctx ends or within passes.
func WaitReady(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("router not ready: %s", url)
}

// Restart stops router i (SIGINT: it finishes its requests and flushes its
// queues), waits hold, and starts it again on the same ports; it returns once the
// new one is ready.
func (s *Set) Restart(ctx context.Context, i int, hold time.Duration) error {
	r := s.Routers[i]
	_ = r.Cmd.Process.Signal(os.Interrupt)
	_ = r.Cmd.Wait()
	time.Sleep(hold)
	if err := r.start(s.bin); err != nil {
		return err
	}
	return WaitReady(ctx, "http://"+r.Admin+"/readyz", time.Minute)
}

// Stop ends every router gracefully (SIGINT, then a kill after 20 s) and removes
// the table file.
func (s *Set) Stop() {
	for _, r := range s.Routers {
		if r.Cmd != nil {
			_ = r.Cmd.Process.Signal(os.Interrupt)
		}
	}
	for _, r := range s.Routers {
		if r.Cmd == nil {
			continue
		}
		done := make(chan struct{})
		go func() { _ = r.Cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = r.Cmd.Process.Kill()
			<-done
		}
	}
	_ = os.RemoveAll(s.dir)
}

// Kill ends every router at once (nothing to flush) and removes the table file.
func (s *Set) Kill() {
	for _, r := range s.Routers {
		if r.Cmd != nil {
			_ = r.Cmd.Process.Kill()
			_ = r.Cmd.Wait()
		}
	}
	_ = os.RemoveAll(s.dir)
}

// CPU is the routers' user+system time so far.
func (s *Set) CPU() time.Duration {
	var sum time.Duration
	for _, r := range s.Routers {
		sum += ProcCPU(r.Cmd.Process.Pid)
	}
	return sum
}

// ProcCPU is a process's user+system time (from /proc; 0 when unreadable).
func ProcCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * 10 * time.Millisecond // USER_HZ = 100
}
