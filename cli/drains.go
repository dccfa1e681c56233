package cli

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

func newDrainsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drains",
		Short: "Add, list and remove an app's log drains (LogDrain objects)",
		Long: `A drain delivers an app's whole log stream to a syslog (syslog://, syslog+tls://) or
HTTP(S) (http://, https://) endpoint. Drains are LogDrain objects in the app's
namespace; these commands need RBAC on logdrains there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newDrainsAddCommand(g), newDrainsListCommand(g), newDrainsRemoveCommand(g))
	return cmd
}

// DrainOptions is what `drains add` and the console's form ask for.
type DrainOptions struct {
	Namespace         string
	App               string
	URL               string
	Name              string
	CredentialsSecret string
	CASecret          string // NAME or NAME:KEY
}

// DefaultCAKey is the key of a CA Secret when --ca-secret names none.
const DefaultCAKey = "ca.crt"

// AddDrain creates a LogDrain for an existing app and returns it as created.
func AddDrain(ctx context.Context, c client.Client, o DrainOptions) (*kubeplexv1alpha1.LogDrain, error) {
	if err := requireApp(ctx, c, o.Namespace, o.App); err != nil {
		return nil, err
	}
	d := &kubeplexv1alpha1.LogDrain{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name},
		Spec: kubeplexv1alpha1.LogDrainSpec{
			AppRef: kubeplexv1alpha1.AppReference{Name: o.App},
			URL:    o.URL,
		},
	}
	if o.Name == "" {
		d.GenerateName = generateName(o.App)
	}
	if o.CredentialsSecret != "" {
		d.Spec.CredentialsSecretRef = &kubeplexv1alpha1.CredentialsSecretReference{Name: o.CredentialsSecret}
	}
	if o.CASecret != "" {
		name, key, _ := strings.Cut(o.CASecret, ":")
		if key == "" {
			key = DefaultCAKey
		}
		d.Spec.TLS = &kubeplexv1alpha1.DrainTLS{CASecretRef: &kubeplexv1alpha1.SecretKeyReference{Name: name, Key: key}}
	}
	if err := c.Create(ctx, d); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("a drain named %q already exists in namespace %q", o.Name, o.Namespace)
		}
		return nil, explain(err)
	}
	return d, nil
}

// requireApp fails clearly when the app does not exist.
func requireApp(ctx context.Context, c client.Client, ns, app string) error {
	var a kubeplexv1alpha1.LogApp
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, &a); err != nil {
		if apierrors.IsNotFound(err) && !isMissingResource(err) {
			return fmt.Errorf("%w: no LogApp %q in namespace %q", ErrAppNotFound, app, ns)
		}
		return explain(err)
	}
	return nil
}

// RemoveDrain deletes a LogDrain by name.
func RemoveDrain(ctx context.Context, c client.Client, ns, name string) error {
	d := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Delete(ctx, d); err != nil {
		if apierrors.IsNotFound(err) && !isMissingResource(err) {
			return fmt.Errorf("no drain %q in namespace %q", name, ns)
		}
		return explain(err)
	}
	return nil
}

// ListDrains lists the drains of a namespace (all namespaces when ns is empty),
// of one app when app is set, sorted by namespace and name.
func ListDrains(ctx context.Context, c client.Client, ns, app string) ([]kubeplexv1alpha1.LogDrain, error) {
	var l kubeplexv1alpha1.LogDrainList
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, &l, opts...); err != nil {
		return nil, explain(err)
	}
	// The app, per namespace, for namespace-wide drains' selectors (nil: none there).
	apps := map[string]*kubeplexv1alpha1.LogApp{}
	appIn := func(ns string) *kubeplexv1alpha1.LogApp {
		a, ok := apps[ns]
		if !ok {
			a = &kubeplexv1alpha1.LogApp{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, a); err != nil {
				a = nil
			}
			apps[ns] = a
		}
		return a
	}
	out := l.Items[:0]
	for _, d := range l.Items {
		if app == "" || d.Spec.AppRef.Name == app {
			out = append(out, d)
		} else if d.Spec.AppSelector != nil {
			if a := appIn(d.Namespace); a != nil && CoversApp(&d, a) {
				out = append(out, d)
			}
		}
	}
	slices.SortFunc(out, func(a, b kubeplexv1alpha1.LogDrain) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

// CoversApp reports whether drain d carries app's stream: its appRef names the app,
// or it is a namespace-wide drain of the app's namespace whose selector matches the
// app's labels.
func CoversApp(d *kubeplexv1alpha1.LogDrain, app *kubeplexv1alpha1.LogApp) bool {
	if d.Namespace != app.Namespace {
		return false
	}
	if d.Spec.AppSelector == nil {
		return d.Spec.AppRef.Name == app.Name
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.AppSelector)
	return err == nil && sel.Matches(labels.Set(app.Labels))
}

// DrainAppCell is what the APP column shows: the app's name, or for a namespace-wide
// drain "*" (every app of the namespace) or "*{selector}", with the number of apps
// it covers.
func DrainAppCell(d *kubeplexv1alpha1.LogDrain) string {
	if d.Spec.AppSelector == nil {
		return d.Spec.AppRef.Name
	}
	cell := "*"
	if sel := metav1.FormatLabelSelector(d.Spec.AppSelector); sel != "" && sel != "<none>" {
		cell += "{" + sel + "}"
	}
	return cell + "(" + strconv.Itoa(int(d.Status.Apps)) + ")"
}

// RedactURL removes credentials (userinfo, and query values that look like secrets)
// from a drain URL for display.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			lk := strings.ToLower(k)
			for _, s := range []string{"token", "key", "secret", "pass", "auth", "sig"} {
				if strings.Contains(lk, s) {
					q.Set(k, "xxxxx")
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// ConditionStatus is a condition's status ("True", "False", "Unknown") or "-".
func ConditionStatus(conds []metav1.Condition, t string) string {
	c := meta.FindStatusCondition(conds, t)
	if c == nil {
		return "-"
	}
	return string(c.Status)
}

// DrainProblem is the drain's most useful error text: the last delivery error, or
// why it is not Ready.
func DrainProblem(d *kubeplexv1alpha1.LogDrain) string {
	if d.Status.LastError != "" {
		return d.Status.LastError
	}
	if c := meta.FindStatusCondition(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition); c != nil && c.Status != metav1.ConditionTrue {
		return c.Reason + ": " + c.Message
	}
	return ""
}

func newDrainsAddCommand(g *globals) *cobra.Command {
	o := DrainOptions{}
	cmd := &cobra.Command{
		Use:   "add APP URL",
		Short: "Drain an app's log stream to a syslog or HTTP(S) endpoint",
		Example: `  kubeplex drains add web syslog+tls://logs.example.com:6514 -n shop
  kubeplex drains add web https://logs.example.com/ingest --name search \
      --credentials-secret search-creds --ca-secret search-ca:ca.crt -n shop`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := g.client()
			if err != nil {
				return err
			}
			o.Namespace, o.App, o.URL = ns, args[0], args[1]
			d, err := AddDrain(cmd.Context(), c, o)
			if err != nil {
				return err
			}
			return say(g.out, "drain %s added to app %s in namespace %s: %s\n", d.Name, o.App, ns, RedactURL(d.Spec.URL))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "", "name of the LogDrain (default: the app's name and a random suffix)")
	f.StringVar(&o.CredentialsSecret, "credentials-secret", "", "Secret with keys username and password: Basic auth for an http(s) drain")
	f.StringVar(&o.CASecret, "ca-secret", "",
		"Secret NAME[:KEY] (default key "+DefaultCAKey+") with the PEM CA that signs the endpoint's certificate")
	return cmd
}

func newDrainsListCommand(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list [APP]",
		Short: "List drains with their health and counters",
		Long: `List the drains of a namespace (or of one app): the URL with credentials removed,
Ready (accepted into the routing table), Delivering (routers deliver without errors),
messages delivered and dropped, and the last error.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := g.client()
			if err != nil {
				return err
			}
			if all {
				ns = ""
			}
			app := ""
			if len(args) == 1 {
				app = args[0]
			}
			ds, err := ListDrains(cmd.Context(), c, ns, app)
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				notice(g.err, "no drains\n")
				return nil
			}
			tbl := newTable(g.out, all, "NAME", "APP", "URL", "READY", "DELIVERING", "DELIVERED", "DROPPED", "LAST ERROR")
			for i := range ds {
				d := &ds[i]
				cells := []string{d.Name, DrainAppCell(d), RedactURL(d.Spec.URL),
					ConditionStatus(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition),
					ConditionStatus(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition),
					itoa(d.Status.Delivered), itoa(d.Status.Dropped), oneLine(DrainProblem(d))}
				if all {
					cells = append([]string{d.Namespace}, cells...)
				}
				tbl.row(cells...)
			}
			return tbl.flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list drains of every namespace")
	return cmd
}

func newDrainsRemoveCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a drain (delete the LogDrain)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := g.client()
			if err != nil {
				return err
			}
			if err := RemoveDrain(cmd.Context(), c, ns, args[0]); err != nil {
				return err
			}
			return say(g.out, "drain %s removed from namespace %s\n", args[0], ns)
		},
	}
}
