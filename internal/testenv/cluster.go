package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// Scheme returns a new scheme with client-go's types and kubeplex's API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, kubeplexv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			// Static registrations: an error here is a programming error.
			panic(fmt.Sprintf("build scheme: %v", err))
		}
	}
	return s
}

// RepoRoot is the module's root directory, found from the working directory (a
// test runs in its package's directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/kubeplex/kubeplex\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of github.com/kubeplex/kubeplex above the working directory")
		}
		dir = parent
	}
}

// Cluster is a real kube-apiserver and etcd (envtest) with kubeplex's CRDs
// installed, and an admin client for it.
type Cluster struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
}

// StartCluster starts a cluster; the caller stops it. Tests use NewCluster or
// LazyCluster; StartCluster is for TestMain. Missing envtest assets are an error
// that says how to get them.
func StartCluster() (*Cluster, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test` " +
			"(or `make envtest` and export KUBEBUILDER_ASSETS=bin/k8s/1.37.2)")
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	SlowStart(env)
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest (KUBEBUILDER_ASSETS=%s): %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create client: %w", err), env.Stop())
	}
	return &Cluster{Env: env, Config: cfg, Client: c}, nil
}

// SlowStart gives env's etcd and kube-apiserver minutes, not envtest's default 20 s,
// to start and stop: on a loaded 2-CPU machine (CI, a make test beside builds) the
// API server took longer and whole packages failed with "timeout waiting for
// process kube-apiserver to start". KUBEBUILDER_CONTROLPLANE_START_TIMEOUT and
// _STOP_TIMEOUT still win when set.
func SlowStart(env *envtest.Environment) {
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = 3 * time.Minute
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_STOP_TIMEOUT") == "" {
		env.ControlPlaneStopTimeout = time.Minute
	}
}

// Stop stops the API server and etcd.
func (c *Cluster) Stop() error { return c.Env.Stop() }

// NewCluster starts a cluster for one test and stops it when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Logf("stop envtest: %v", err)
		}
	})
	return c
}

// Host is the API server's host:port.
func (c *Cluster) Host() string {
	return strings.TrimPrefix(strings.TrimPrefix(c.Config.Host, "https://"), "http://")
}

// AdminKubeconfig writes a kubeconfig of the cluster's admin to a file in the
// test's temporary directory and returns its path.
func (c *Cluster) AdminKubeconfig(t testing.TB) string {
	t.Helper()
	return writeKubeconfig(t, "admin", c.Env.KubeConfig)
}

// User provisions a user called name, who has no rights until the test binds some,
// and returns the path of a kubeconfig for it and a client acting as it.
func (c *Cluster) User(t testing.TB, name string) (kubeconfig string, cl client.Client) {
	t.Helper()
	u, err := c.Env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	cl, err = client.New(u.Config(), client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return writeKubeconfig(t, name, kc), cl
}

func writeKubeconfig(t testing.TB, name string, kc []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// LazyCluster is one cluster for a whole test package, started on first use so the
// package's pure tests and fuzz workers do not pay for it. TestMain calls Stop.
type LazyCluster struct {
	// Setup, if set, runs once after the cluster started (namespaces, loggers).
	Setup func(*Cluster) error

	once    sync.Once
	cluster *Cluster
	err     error
}

// Get returns the package's cluster, starting it on the first call. A cluster that
// did not start fails every test that needs it.
func (l *LazyCluster) Get(t testing.TB) *Cluster {
	t.Helper()
	l.once.Do(func() {
		c, err := StartCluster()
		if err == nil && l.Setup != nil {
			if err = l.Setup(c); err != nil {
				err = errors.Join(fmt.Errorf("set up envtest: %w", err), c.Stop())
			}
		}
		if err != nil {
			l.err = err
			return
		}
		l.cluster = c
	})
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.cluster
}

// Started reports whether a cluster is running.
func (l *LazyCluster) Started() bool { return l.cluster != nil }

// Stop stops the cluster if one was started.
func (l *LazyCluster) Stop() error {
	if l.cluster == nil {
		return nil
	}
	return l.cluster.Stop()
}
