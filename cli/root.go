// Package cli is the kubeplex command line: `kubeplex logs` (history and tail of an
// app through a LogSession), `drains`, `apps` and `console` (a local web page). It
// talks to the API server with the user's kubeconfig, so RBAC and the audit log
// decide and record who read or changed what, and to a router only through the
// session URL the manager hands out.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// pluginPrefix is how kubectl finds plugins on PATH: `kubectl kubeplex` runs
// kubectl-kubeplex.
const pluginPrefix = "kubectl-"

// Main runs the command line given argv[0] and the arguments, writing to out and
// errOut, and returns the process exit code. Errors are printed as one line.
func Main(ctx context.Context, argv0 string, args []string, out, errOut io.Writer) int {
	// controller-runtime's client would otherwise warn that no logger was set.
	logf.SetLogger(logr.Discard())
	root := NewRootCommand(argv0, out, errOut)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		notice(errOut, "error: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// globals are the flags every command shares: which cluster, as whom, where.
type globals struct {
	kubeconfig string
	context    string
	namespace  string
	out, err   io.Writer

	loaded clientcmd.ClientConfig
}

// NewRootCommand builds the command tree. Named kubectl-kubeplex (a symlink or a
// copy), it presents itself as `kubectl kubeplex`.
func NewRootCommand(argv0 string, out, errOut io.Writer) *cobra.Command {
	g := &globals{out: out, err: errOut}
	root := &cobra.Command{
		Use:   "kubeplex",
		Short: "Read and route the logs of Kubernetes apps with kubeplex",
		Long: `kubeplex reads an app's log stream (history and live tail) and manages where it is
drained, using your kubeconfig: what you may do is what RBAC grants you in the app's
namespace (create logsessions to read logs; logdrains to manage drains).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if strings.HasPrefix(filepath.Base(argv0), pluginPrefix) {
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl kubeplex"}
	}
	root.SetOut(out)
	root.SetErr(errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	pf.StringVar(&g.context, "context", "", "the kubeconfig context to use")
	pf.StringVarP(&g.namespace, "namespace", "n", "", "the app's namespace (default: the context's namespace)")

	root.AddCommand(newLogsCommand(g), newDrainsCommand(g), newAppsCommand(g), newConsoleCommand(g))
	return root
}

// clientConfig resolves the kubeconfig the way kubectl does: --kubeconfig, then
// $KUBECONFIG, then ~/.kube/config, with the context and namespace overrides.
func (g *globals) clientConfig() clientcmd.ClientConfig {
	if g.loaded == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rules.ExplicitPath = g.kubeconfig
		overrides := &clientcmd.ConfigOverrides{CurrentContext: g.context}
		overrides.Context.Namespace = g.namespace
		g.loaded = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	}
	return g.loaded
}

// restConfig is the API server connection of the chosen context. Any auth the
// kubeconfig describes (certificates, tokens, exec plugins such as cloud login
// helpers) works, because client-go does it.
func (g *globals) restConfig() (*rest.Config, error) {
	cfg, err := g.clientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubeplex-cli"
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// ns is the namespace commands act in.
func (g *globals) ns() (string, error) {
	ns, _, err := g.clientConfig().Namespace()
	if err != nil {
		return "", fmt.Errorf("load kubeconfig: %w", err)
	}
	return ns, nil
}

// Scheme knows kubeplex's API types; LogSession is handled as unstructured so the
// CLI depends only on the API's wire shape.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := kubeplexv1alpha1.AddToScheme(s); err != nil {
		panic(fmt.Sprintf("build scheme: %v", err)) // static registration
	}
	return s
}

// client returns an API client and the namespace to act in.
func (g *globals) client() (client.Client, string, error) {
	cfg, err := g.restConfig()
	if err != nil {
		return nil, "", err
	}
	ns, err := g.ns()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, "", explain(err)
	}
	return c, ns, nil
}

// oneLine keeps an error on one line, as a terminal user reads it.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// isTerminal reports whether w is a terminal (colors on) rather than a pipe or file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
