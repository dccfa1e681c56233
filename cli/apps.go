package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// AppSummary is one LogApp with the health of its drains, as `apps` and the console
// show it.
type AppSummary struct {
	Namespace      string `json:"namespace"`
	Name           string `json:"name"`
	Ready          string `json:"ready"`
	Pods           int32  `json:"pods"`
	InjectedPods   int32  `json:"injectedPods"`
	UninjectedPods int32  `json:"uninjectedPods"`
	Drains         int    `json:"drains"`
	// DrainsHealthy counts drains that are Ready and Delivering.
	DrainsHealthy int   `json:"drainsHealthy"`
	Dropped       int64 `json:"dropped"`
}

// DrainHealth is the drains column: "-" without drains, "ok" when all are healthy,
// otherwise how many are and the drops.
func (a *AppSummary) DrainHealth() string {
	switch {
	case a.Drains == 0:
		return "-"
	case a.DrainsHealthy == a.Drains && a.Dropped == 0:
		return fmt.Sprintf("%d ok", a.Drains)
	}
	s := fmt.Sprintf("%d/%d healthy", a.DrainsHealthy, a.Drains)
	if a.Dropped > 0 {
		s += fmt.Sprintf(", %d dropped", a.Dropped)
	}
	return s
}

// ListApps summarises the LogApps of a namespace (all when ns is empty).
func ListApps(ctx context.Context, c client.Client, ns string) ([]AppSummary, error) {
	var apps kubeplexv1alpha1.LogAppList
	var opts []client.ListOption
	if ns != "" {
		opts = append(opts, client.InNamespace(ns))
	}
	if err := c.List(ctx, &apps, opts...); err != nil {
		return nil, explain(err)
	}
	drains, err := ListDrains(ctx, c, ns, "")
	if err != nil {
		return nil, err
	}
	byApp := map[string][]*kubeplexv1alpha1.LogDrain{}
	var wide []*kubeplexv1alpha1.LogDrain // namespace-wide: matched against each app
	for i := range drains {
		d := &drains[i]
		if d.Spec.AppSelector != nil {
			wide = append(wide, d)
			continue
		}
		k := d.Namespace + "/" + d.Spec.AppRef.Name
		byApp[k] = append(byApp[k], d)
	}
	for i := range apps.Items {
		a := &apps.Items[i]
		for _, d := range wide {
			if CoversApp(d, a) {
				byApp[a.Namespace+"/"+a.Name] = append(byApp[a.Namespace+"/"+a.Name], d)
			}
		}
	}
	out := make([]AppSummary, 0, len(apps.Items))
	for _, a := range apps.Items {
		s := AppSummary{Namespace: a.Namespace, Name: a.Name,
			Ready: ConditionStatus(a.Status.Conditions, kubeplexv1alpha1.ReadyCondition),
			Pods:  a.Status.Pods, InjectedPods: a.Status.InjectedPods, UninjectedPods: a.Status.UninjectedPods}
		for _, d := range byApp[a.Namespace+"/"+a.Name] {
			s.Drains++
			s.Dropped += d.Status.Dropped
			if ConditionStatus(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition) == string(metav1.ConditionTrue) &&
				ConditionStatus(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition) == string(metav1.ConditionTrue) {
				s.DrainsHealthy++
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b AppSummary) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

func newAppsCommand(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "List apps (LogApps) with their pods, injection and drain health",
		Long: `List the LogApps of a namespace: Ready, the pods the app's selector matches, how
many carry the collector (injected) and how many the webhook had to leave unwrapped
(uninjected), and the health of the app's drains.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, ns, err := g.client()
			if err != nil {
				return err
			}
			if all {
				ns = ""
			}
			apps, err := ListApps(cmd.Context(), c, ns)
			if err != nil {
				return err
			}
			if len(apps) == 0 {
				notice(g.err, "no apps\n")
				return nil
			}
			tbl := newTable(g.out, all, "NAME", "READY", "PODS", "INJECTED", "UNINJECTED", "DRAINS")
			for i := range apps {
				a := &apps[i]
				cells := []string{a.Name, a.Ready, itoa(a.Pods), itoa(a.InjectedPods), itoa(a.UninjectedPods), a.DrainHealth()}
				if all {
					cells = append([]string{a.Namespace}, cells...)
				}
				tbl.row(cells...)
			}
			return tbl.flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list apps of every namespace")
	return cmd
}

func itoa[T int32 | int64](n T) string { return strconv.FormatInt(int64(n), 10) }
