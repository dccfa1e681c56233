package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// stack is what most tests here start from: a real API server with kubeplex's CRDs
// and the namespaces systemNS and shop, plus the routers and managers the test runs
// on it as processes on 127.0.0.1, started with the flags all of them share.
type stack struct {
	*cluster
	// ctx bounds the test's API calls (5 minutes).
	ctx      context.Context
	routerKC string
	routers  []*router
}

// router is one router process's addresses (and the process once started).
type router struct {
	// URL is its HTTP listener: ingest (POST /logs), sessions, peers.
	URL string
	// Admin is its admin listener's host:port (/status, /metrics).
	Admin string
	*testenv.Process
}

// AdminURL is the admin listener as a URL.
func (r *router) AdminURL() string { return "http://" + r.Admin }

func newStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{cluster: startCluster(t), ctx: contextFor(t, 5*time.Minute)}
	for _, ns := range []string{systemNS, "shop"} {
		if err := s.Client.Create(s.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// reserveRouter picks a router's addresses without starting it, so that routers can
// name each other (--peers) before the first one starts.
func (s *stack) reserveRouter(t *testing.T) *router {
	t.Helper()
	return &router{URL: fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)), Admin: testenv.FreeAddr(t)}
}

// startRouter starts r (nil: a new one) reading the stack's routing table with a
// user that may read only those Secrets, drains to loopback allowed, then extra.
func (s *stack) startRouter(t *testing.T, r *router, extra ...string) *router {
	t.Helper()
	if r == nil {
		r = s.reserveRouter(t)
	}
	if s.routerKC == "" {
		s.routerKC = s.routerKubeconfig(t)
	}
	args := append([]string{"--http-addr", strings.TrimPrefix(r.URL, "http://"), "--admin-addr", r.Admin,
		"--routes-secret", systemNS + "/" + routesName, "--kubeconfig", s.routerKC, "--allow-cidrs", "127.0.0.0/8"}, extra...)
	r.Process = start(t, "router", args...)
	s.routers = append(s.routers, r)
	return r
}

// managerArgs are the flags of a manager on this stack: its API server, namespace and
// routing Secret, no metrics, probe or webhook listener, leader election as asked.
// With post, drains to loopback are allowed and the manager posts its own lines
// (kubeplex[…]) to post and reads the status of every router started so far. extra
// comes last.
func (s *stack) managerArgs(leaderElect bool, post *router, extra ...string) []string {
	args := []string{"--kubeconfig", s.kubeconfig, "--namespace", systemNS, "--routes-secret", routesName,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--webhook-port", "0",
		fmt.Sprintf("--leader-elect=%t", leaderElect)}
	if post != nil {
		status := make([]string, 0, len(s.routers))
		for _, r := range s.routers {
			status = append(status, r.AdminURL()+"/status")
		}
		args = append(args, "--allow-cidrs", "127.0.0.0/8", "--router-url", post.URL+"/logs",
			"--router-status-urls", strings.Join(status, ","))
	}
	return append(args, extra...)
}

// startManager starts a manager with managerArgs.
func (s *stack) startManager(t *testing.T, leaderElect bool, post *router, extra ...string) *testenv.Process {
	t.Helper()
	return start(t, "manager", s.managerArgs(leaderElect, post, extra...)...)
}

// routerURLs are the started routers' HTTP URLs, adminURLs their admin URLs.
func (s *stack) routerURLs() []string {
	out := make([]string, 0, len(s.routers))
	for _, r := range s.routers {
		out = append(out, r.URL)
	}
	return out
}

func (s *stack) adminURLs() []string {
	out := make([]string, 0, len(s.routers))
	for _, r := range s.routers {
		out = append(out, r.AdminURL())
	}
	return out
}

// postLogs posts a logplex-1 body (wire.AppendFrame) to a router's POST /logs with
// token as the app token, the way collectors and add-ons send it, plus header; any
// answer but 2xx is an error.
func postLogs(ctx context.Context, routerURL, token string, body []byte, header map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, routerURL+"/logs", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", wire.ContentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.SetBasicAuth("token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close() // only the status matters
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s/logs: %d", routerURL, resp.StatusCode)
	}
	return nil
}
