package reliability

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// reconciles sums controller_runtime_reconcile_total of controller from a manager's
// metrics.
func reconciles(url, controller string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "controller_runtime_reconcile_total{") || !strings.Contains(l, `controller="`+controller+`"`) {
			continue
		}
		f, err := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
		if err != nil {
			return 0, err
		}
		n += int(f)
	}
	return n, sc.Err()
}

// TestScenario7LeaderKilled: two manager processes elect a leader on a real API
// server; the leader is killed (SIGKILL: it cannot release its Lease). The other
// takes over once the Lease expires (10 s lease + up to two jittered 1.5 s retries:
// 13.6 s at most, controllers/manager Options), an app and drain created while there
// was no leader reach the routing table, and the new leader's first reconcile of
// every object the old one had finished writes nothing: their resourceVersions do
// not move.
func TestScenario7LeaderKilled(t *testing.T) {
	c := testenv.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	for _, ns := range []string{systemNS, "shop"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	kc := c.AdminKubeconfig(t)
	type mgr struct {
		p       *testenv.Process
		metrics string
	}
	ms := make([]mgr, 0, 2)
	for range 2 {
		addr := testenv.FreeAddr(t)
		p := testenv.Start(t, managerBin, nil, "--kubeconfig", kc, "--namespace", systemNS,
			"--routes-secret", routesName, "--metrics-bind-address", addr, "--health-probe-bind-address", "0",
			"--leader-elect=true", "--webhook-port", "0", "--allow-cidrs", "127.0.0.0/8", "--router-service", "")
		ms = append(ms, mgr{p, "http://" + addr + "/metrics"})
	}
	leader := func() int {
		for i, m := range ms {
			if strings.Contains(m.p.Out.String(), "Successfully acquired lease") {
				return i
			}
		}
		return -1
	}
	testenv.Until(t, "a leader elected", func() bool { return leader() >= 0 })
	old := leader()

	// Steady state: an app and a drain, Ready, in the table.
	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	d1 := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "first", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: "syslog://127.0.0.1:6514"}}
	for _, o := range []client.Object{app, d1} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	inTable := func(names ...string) error {
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &sec); err != nil {
			return err
		}
		tbl, err := routing.Decode(sec.Data[routing.SecretKey])
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, a := range tbl.Apps {
			for _, d := range a.Drains {
				have[d.ID] = true
			}
		}
		for _, n := range names {
			if !have["shop/"+n] {
				return fmt.Errorf("drain shop/%s not in the table (version %s)", n, tbl.Version)
			}
		}
		return nil
	}
	ready := func(o client.Object, conds func() []metav1.Condition) error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(conds(), kubeplexv1alpha1.ReadyCondition) {
			return fmt.Errorf("%s not Ready: %+v", o.GetName(), conds())
		}
		return nil
	}
	testenv.Eventually(t, "app and drain Ready and in the table", func() error {
		if err := ready(app, func() []metav1.Condition { return app.Status.Conditions }); err != nil {
			return err
		}
		// The app's status counts its drains: until the old leader wrote 1 there, it
		// still has a write to make (seen under load: the "done writing" check below
		// passed between two of its writes, and the new leader's count looked like a
		// needless write).
		if app.Status.Drains != 1 {
			return fmt.Errorf("LogApp status.drains %d, want 1", app.Status.Drains)
		}
		if err := ready(d1, func() []metav1.Condition { return d1.Status.Conditions }); err != nil {
			return err
		}
		return inTable("first")
	})
	// What the old leader wrote, once it stopped writing: every object kubeplex owns
	// or reconciles, and its resourceVersion, unchanged over two reads of everything.
	versions := func() map[string]string {
		v := map[string]string{}
		var apps kubeplexv1alpha1.LogAppList
		var drains kubeplexv1alpha1.LogDrainList
		var secs corev1.SecretList
		for _, l := range []client.ObjectList{&apps, &drains, &secs} {
			if err := c.Client.List(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		for _, a := range apps.Items {
			v["LogApp "+a.Name] = a.ResourceVersion
		}
		for _, d := range drains.Items {
			v["LogDrain "+d.Name] = d.ResourceVersion
		}
		for _, s := range secs.Items {
			v["Secret "+s.Namespace+"/"+s.Name] = s.ResourceVersion
		}
		return v
	}
	var before map[string]string
	testenv.Eventually(t, "the old leader done writing", func() error {
		a, b := versions(), versions()
		if fmt.Sprint(a) != fmt.Sprint(b) {
			return fmt.Errorf("still changing")
		}
		before = b
		return nil
	})

	var appBefore kubeplexv1alpha1.LogApp
	if err := c.Client.Get(ctx, client.ObjectKeyFromObject(app), &appBefore); err != nil {
		t.Fatal(err)
	}
	// Kill the leader; make a table write while there is none.
	t0 := time.Now()
	if err := ms[old].p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-ms[old].p.Exited()
	// A new app with its own drain: nothing of the old state has to change for it but
	// the table.
	late := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "shop"}}
	d2 := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "during-failover", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "late"}, URL: "syslog://127.0.0.1:6515"}}
	for _, o := range []client.Object{late, d2} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	next := 1 - old
	testenv.Until(t, "the other manager took the lease", func() bool {
		return strings.Contains(ms[next].p.Out.String(), "Successfully acquired lease")
	})
	took := time.Since(t0)
	testenv.Eventually(t, "the drain made during the failover Ready and in the table", func() error {
		if err := ready(d2, func() []metav1.Condition { return d2.Status.Conditions }); err != nil {
			return err
		}
		return inTable("first", "during-failover")
	})
	// The new leader reconciled both drains and both apps (its first pass over
	// everything), and nothing of the old state moved.
	testenv.Eventually(t, "the new leader reconciled every object", func() error {
		for ctrl, want := range map[string]int{"logdrain": 2, "logapp": 2} {
			n, err := reconciles(ms[next].metrics, ctrl)
			if err != nil {
				return err
			}
			if n < want {
				return fmt.Errorf("%s: %d reconciles, want at least %d", ctrl, n, want)
			}
		}
		return nil
	})
	after := versions()
	var moved []string
	for k, v := range before {
		if k == "Secret "+systemNS+"/"+routesName {
			continue // the failover's own write
		}
		if after[k] != v {
			moved = append(moved, fmt.Sprintf("%s %s→%s", k, v, after[k]))
		}
	}
	t.Logf("new leader after %v (target ≤ 17 s: 10 s lease + up to 2 × 1.8 s jittered retries), %d objects compared, %d moved", took.Round(100*time.Millisecond), len(before), len(moved))
	if len(moved) > 0 {
		var appAfter kubeplexv1alpha1.LogApp
		_ = c.Client.Get(ctx, client.ObjectKeyFromObject(app), &appAfter)
		b1, _ := json.MarshalIndent(appBefore, "", " ")
		b2, _ := json.MarshalIndent(appAfter, "", " ")
		t.Logf("LogApp before:\n%s\nafter:\n%s", b1, b2)
		t.Errorf("the new leader wrote unchanged objects: %v", moved)
	}
}
