package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
)

// applyResult is what the end-to-end run measured.
type applyResult struct {
	drains, apps      int
	created           time.Duration // all LogApps and LogDrains created
	inTable           time.Duration // from the first create until the table held every drain
	quiet             time.Duration // until the manager's work queues were empty
	shards, bytes     int
	managerHeap       uint64 // this process after GC: the manager's caches (and the bench's little)
	managerRSS        uint64
	routerRSS         uint64
	routerReady       time.Duration // router start → first table applied
	quietRuns, churns []time.Duration
	churnRate         float64
	load              string
}

const (
	systemNS = "kubeplex-system"
	probeNS  = "probe"
)

// measureApply runs envtest, the manager's reconcilers in this process and a router
// binary, creates apps LogApps and drains LogDrains, and then times kubectl apply of
// one more drain → its first message at a loopback sink, reps times on a quiet
// cluster and reps times while other drains are created and deleted.
func measureApply(ctx context.Context, routerBin string, drains, apps, reps int) (applyResult, error) {
	res := applyResult{drains: drains, apps: apps}
	cluster, err := testenv.StartCluster()
	if err != nil {
		return res, err
	}
	defer func() { _ = cluster.Stop() }()
	// No client-side rate limit for the bench's creates nor for the manager (which
	// runs without one in cmd/manager too): envtest's config allows 1,000 requests a
	// second per client, and 50,000 drains cost the manager about four writes each.
	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS = -1
	k8s, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return res, err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNS}}); err != nil {
		return res, err
	}

	// The manager, as cmd/manager wires it (no router health polling: no Service).
	eps, err := egress.Endpoints(ctx, cluster.Config.Host, nil)
	if err != nil {
		return res, err
	}
	allow, hosts, err := egress.ParseList("10.0.0.0/8,127.0.0.0/8")
	if err != nil {
		return res, err
	}
	policy := &egress.Policy{Allow: allow, AllowHosts: hosts, DenyEndpoints: eps, Resolver: noDNS}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: testenv.Scheme(), Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: controllers.CacheOptions(),
	})
	if err != nil {
		return res, err
	}
	mctx, stopManager := context.WithCancel(ctx)
	defer stopManager()
	if err := controllers.Setup(mctx, mgr, controllers.Config{
		Namespace: systemNS, RoutesSecret: routesName, Policy: policy, TokenGracePeriod: time.Hour,
	}); err != nil {
		return res, err
	}
	go func() { _ = mgr.Start(mctx) }()

	// The objects, createWorkers at a time.
	start := time.Now()
	if err := createAll(ctx, k8s, (apps+appsPerNamespace-1)/appsPerNamespace, func(i int) client.Object {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS(i * appsPerNamespace)}}
	}); err != nil {
		return res, err
	}
	if err := createAll(ctx, k8s, apps, func(i int) client.Object {
		return &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: appNS(i), Name: appName(i)},
			Spec: kubeplexv1alpha1.LogAppSpec{HistorySize: 1500}}
	}); err != nil {
		return res, err
	}
	if err := createAll(ctx, k8s, drains, func(d int) client.Object {
		a := d % apps
		return &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: appNS(a), Name: drainName(d)},
			Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: appName(a)}, URL: benchDrainURL(d)}}
	}); err != nil {
		return res, err
	}
	// Apps of their own for the probes: no other drains, so the probes' lines go to
	// the probe drain only.
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: probeNS}}); err != nil {
		return res, err
	}
	if err := createAll(ctx, k8s, 2*reps, func(i int) client.Object {
		return &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Namespace: probeNS, Name: fmt.Sprintf("probe-%d", i)},
			Spec: kubeplexv1alpha1.LogAppSpec{HistorySize: 1500}}
	}); err != nil {
		return res, err
	}
	res.created = time.Since(start)
	fmt.Fprintf(os.Stderr, "apply: %d apps and %d drains created in %v\n", apps, drains, res.created.Round(time.Second))

	store := &routes.Store{Client: k8s, Namespace: systemNS, Base: routesName}
	// Every 15 s: a read lists every shard (11 MiB at 30,000 drains), load of its own.
	if err := waitFor(ctx, 60*time.Minute, 15*time.Second, func() (bool, error) {
		t, err := store.Read(ctx)
		if err != nil || t == nil {
			return false, nil //nolint:nilerr // a writer between shards: look again
		}
		n := 0
		for _, a := range t.Apps {
			n += len(a.Drains)
		}
		fmt.Fprintf(os.Stderr, "apply: table holds %d drains after %v\n", n, time.Since(start).Round(time.Second))
		return n >= drains, nil
	}); err != nil {
		return res, fmt.Errorf("wait for the table: %w", err)
	}
	res.inTable = time.Since(start)
	if err := waitQuiet(ctx, 30*time.Minute); err != nil {
		return res, err
	}
	res.quiet = time.Since(start)
	var s0 corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0); err != nil {
		return res, err
	}
	var shards corev1.SecretList
	if err := k8s.List(ctx, &shards, client.InNamespace(systemNS),
		client.MatchingLabels{kubeplexv1alpha1.SecretRoleLabel: kubeplexv1alpha1.SecretRoleRoutes}); err != nil {
		return res, err
	}
	for _, s := range shards.Items {
		res.shards++
		res.bytes += len(s.Data["routes.json"])
	}
	res.managerHeap = heap()
	res.managerRSS = rssOf(os.Getpid())

	// The router, reading the table from the Secrets.
	dir, err := os.MkdirTemp("", "kubeplex-scale-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, cluster.Env.KubeConfig, 0o600); err != nil {
		return res, err
	}
	httpAddr, adminAddr, syslogAddr := freeAddr(), freeAddr(), freeAddr()
	routerAdmin = adminAddr
	rstart := time.Now()
	router := exec.CommandContext(ctx, routerBin, "--routes-secret", systemNS+"/kubeplex-routes", "--kubeconfig", kc,
		"--http-addr", httpAddr, "--admin-addr", adminAddr, "--syslog-tcp-addr", syslogAddr,
		"--allow-cidrs", "127.0.0.0/8", "--name", "bench", "--log-level", cmp.Or(os.Getenv("SCALE_ROUTER_LOG"), "warn"))
	router.Stdout, router.Stderr = os.Stderr, os.Stderr
	if err := router.Start(); err != nil {
		return res, err
	}
	defer func() { _ = router.Process.Kill(); _ = router.Wait() }()
	if err := waitFor(ctx, 5*time.Minute, 50*time.Millisecond, func() (bool, error) {
		return httpOK("http://" + adminAddr + "/readyz"), nil
	}); err != nil {
		return res, fmt.Errorf("router not ready: %w", err)
	}
	res.routerReady = time.Since(rstart)
	res.routerRSS = rssOf(router.Process.Pid)
	gate(ctx, router.Process.Pid)
	defer ungate()
	res.load = loadAvg()

	run := func(rep int, tag string) (time.Duration, error) {
		app := fmt.Sprintf("probe-%d", rep)
		var tok corev1.Secret
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: probeNS, Name: app + kubeplexv1alpha1.TokenSecretSuffix}, &tok); err != nil {
			return 0, err
		}
		return firstDelivery(ctx, k8s, syslogAddr, string(tok.Data[kubeplexv1alpha1.TokenSecretKey]), app,
			fmt.Sprintf("probe-%s-%d", tag, rep))
	}
	for rep := range reps {
		if err := waitQuiet(ctx, 5*time.Minute); err != nil {
			return res, err
		}
		d, err := run(rep, "quiet")
		if err != nil {
			return res, err
		}
		fmt.Fprintf(os.Stderr, "apply: quiet %d: %v\n", rep, d)
		res.quietRuns = append(res.quietRuns, d)
	}
	res.churns, res.churnRate, err = probeUnderChurn(ctx, k8s, apps, reps, run)
	if err != nil {
		return res, err
	}
	return res, nil
}

// probeUnderChurn runs the probes while other drains are created and deleted, two
// changes a second, and returns the probes' times and the churn's rate.
func probeUnderChurn(ctx context.Context, k8s client.Client, apps, reps int,
	run func(rep int, tag string) (time.Duration, error),
) ([]time.Duration, float64, error) {
	cctx, stopChurn := context.WithCancel(ctx)
	var churned atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-cctx.Done():
				return
			case <-tick.C:
			}
			if i%2 == 1 {
				prev := (i - 1) * 104729 % apps
				_ = k8s.Delete(cctx, &kubeplexv1alpha1.LogDrain{
					ObjectMeta: metav1.ObjectMeta{Namespace: appNS(prev), Name: fmt.Sprintf("churn-%d", i-1)}})
			} else {
				a := (i * 104729) % apps
				_ = k8s.Create(cctx, &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: appNS(a), Name: fmt.Sprintf("churn-%d", i)},
					Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: appName(a)}, URL: benchDrainURL(i)}})
			}
			churned.Add(1)
		}
	})
	defer func() { stopChurn(); wg.Wait() }()
	start := time.Now()
	var out []time.Duration
	for rep := range reps {
		d, err := run(reps+rep, "churn")
		if err != nil {
			return out, 0, err
		}
		fmt.Fprintf(os.Stderr, "apply: churn %d: %v\n", rep, d)
		out = append(out, d)
	}
	return out, float64(churned.Load()) / time.Since(start).Seconds(), nil
}

// benchDrainURL is an address-literal destination (no DNS lookups) nobody listens on:
// no message is ever sent to these drains' apps, so the router never dials them.
func benchDrainURL(d int) string {
	ip := fmt.Sprintf("10.%d.%d.%d", (d>>16)&255, (d>>8)&255, d&255|1)
	if d%2 == 0 {
		return "https://" + ip + "/v1/ingest"
	}
	return fmt.Sprintf("syslog+tls://%s:%d", ip, 6514)
}

// firstDelivery creates a syslog drain for app (in probeNS) pointing at a new loopback
// listener, sends the app a line every 10 ms through the router's syslog port, and
// returns the time from the create call to the first bytes at the listener.
func firstDelivery(ctx context.Context, k8s client.Client, syslogAddr, token, app, name string) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	got := make(chan time.Time, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		buf := make([]byte, 4096)
		if n, _ := c.Read(buf); n > 0 {
			got <- time.Now()
		}
	}()
	conn, err := net.Dial("tcp", syslogAddr)
	if err != nil {
		return 0, err
	}
	defer func() { _ = conn.Close() }()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			rec := fmt.Sprintf("<14>1 %s bench %s web.1 - - probe line %d", time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"), token, i)
			if _, err := fmt.Fprintf(conn, "%d %s", len(rec), rec); err != nil {
				return
			}
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	d := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Namespace: probeNS, Name: name},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: app}, URL: "syslog://" + ln.Addr().String()}}
	t0 := time.Now()
	if err := k8s.Create(ctx, d); err != nil {
		return 0, err
	}
	if os.Getenv("SCALE_PHASES") != "" {
		go phases(sctx, k8s, d, t0)
	}
	defer func() { _ = k8s.Delete(context.Background(), d) }()
	select {
	case t1 := <-got:
		return t1.Sub(t0), nil
	case <-time.After(2 * time.Minute):
		return 0, fmt.Errorf("drain %s: nothing delivered in 2m", name)
	}
}

// phases prints when the drain's Secret held its accepted destination and when the
// routing table's shard 0 changed after it (diagnosis: SCALE_PHASES=1).
func phases(ctx context.Context, k8s client.Client, d *kubeplexv1alpha1.LogDrain, t0 time.Time) {
	var s0 corev1.Secret
	_ = k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0)
	rv0, accepted, seen := s0.ResourceVersion, false, ""
	id := d.Namespace + "/" + d.Name
	for ctx.Err() == nil {
		if os.Getenv("SCALE_PHASES") == "router" {
			statusPhase(d, t0, id, &seen)
		}
		if !accepted {
			var sec corev1.Secret
			if k8s.Get(ctx, client.ObjectKey{Namespace: d.Namespace, Name: d.Name + kubeplexv1alpha1.DrainSecretSuffix}, &sec) == nil &&
				len(sec.Data[kubeplexv1alpha1.DrainConfigSecretKey]) > 0 {
				accepted = true
				fmt.Fprintf(os.Stderr, "  %s: drain Secret accepted after %v\n", d.Name, time.Since(t0))
			}
		}
		if k8s.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &s0) == nil && s0.ResourceVersion != rv0 {
			in := "not read"
			if t, err := (&routes.Store{Client: k8s, Namespace: systemNS, Base: routesName}).Read(ctx); err == nil && t != nil {
				in = "drain not in it"
				for _, app := range t.Apps {
					for _, dr := range app.Drains {
						if dr.ID == id {
							in = "drain in it"
						}
					}
				}
			}
			fmt.Fprintf(os.Stderr, "  %s: shard 0 rewritten after %v (%s)\n", d.Name, time.Since(t0), in)
			rv0 = s0.ResourceVersion
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusPhase prints when the router's /status first lists the drain (costly at
// tens of thousands of drains: SCALE_PHASES=router only).
func statusPhase(d *kubeplexv1alpha1.LogDrain, t0 time.Time, id string, seen *string) {
	resp, err := http.Get("http://" + routerAdmin + "/status") //nolint:noctx // diagnosis only
	if err != nil {
		return
	}
	var st routing.RouterStatus
	_ = json.NewDecoder(resp.Body).Decode(&st)
	_ = resp.Body.Close()
	if ds, ok := st.Drains[id]; ok {
		now := fmt.Sprintf("delivered %d lastError %q", ds.Delivered, ds.LastError)
		if now != *seen {
			fmt.Fprintf(os.Stderr, "  %s: router status after %v: %s (table %s)\n", d.Name, time.Since(t0), now, st.Version)
			*seen = now
		}
	}
}

// createAll creates n objects from 16 goroutines.
// createWorkers is how many creates are in flight: enough to keep the API server busy
// while each waits for its write.
const createWorkers = 48

func createAll(ctx context.Context, k8s client.Client, n int, obj func(int) client.Object) error {
	jobs := make(chan int)
	errs := make(chan error, createWorkers)
	var wg sync.WaitGroup
	for range createWorkers {
		wg.Go(func() {
			for i := range jobs {
				if err := k8s.Create(ctx, obj(i)); client.IgnoreAlreadyExists(err) != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case jobs <- i:
		case err = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	return errors.Join(err, <-errs)
}

// waitQuiet waits until the manager's controllers have nothing queued, three looks
// in a row a second apart (controller-runtime's workqueue_depth).
func waitQuiet(ctx context.Context, within time.Duration) error {
	calm := 0
	return waitFor(ctx, within, time.Second, func() (bool, error) {
		mfs, err := crmetrics.Registry.Gather()
		if err != nil {
			return false, err
		}
		depth := 0.0
		for _, mf := range mfs {
			if mf.GetName() != "workqueue_depth" {
				continue
			}
			for _, m := range mf.GetMetric() {
				depth += m.GetGauge().GetValue()
			}
		}
		if depth > 0 {
			calm = 0
			return false, nil
		}
		calm++
		return calm >= 3, nil
	})
}

func waitFor(ctx context.Context, within, every time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

func httpOK(url string) bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url) //nolint:noctx // a loopback probe with a timeout
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func rssOf(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func durs(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	out := make([]string, len(s))
	for i, d := range s {
		out[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(out, ", ")
}

func applySection(r applyResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured by `make bench-scale` (`-only apply`) on %s, %d CPUs, %s; "+
		"measured under load (%s; %s when the router started).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), loadNote, r.load)
	b.WriteString(applyIntro)
	mdHead(&b, "measure", "value")
	mdRow(&b, "objects", fmt.Sprintf("%d LogApps, %d LogDrains (and the manager's %d Secrets)", r.apps, r.drains, r.apps*2+r.drains))
	mdRow(&b, fmt.Sprintf("all created (%d client goroutines, no client rate limit)", createWorkers), r.created.Round(time.Second))
	mdRow(&b, "every drain in the table, from the first create", r.inTable.Round(time.Second))
	mdRow(&b, "manager's queues empty", r.quiet.Round(time.Second))
	mdRow(&b, "table", fmt.Sprintf("%d shards, %.1f MiB", r.shards, float64(r.bytes)/(1<<20)))
	mdRow(&b, "manager: Go heap after GC / process RSS (manager, its caches, the bench's client)", mib(r.managerHeap)+" / "+mib(r.managerRSS))
	mdRow(&b, fmt.Sprintf("router: start → table applied (reads all %d shards)", r.shards), r.routerReady.Round(time.Millisecond))
	mdRow(&b, "router RSS with the table applied", mib(r.routerRSS))
	mdRow(&b, "**apply of one drain → first message delivered**, quiet cluster", durs(r.quietRuns))
	mdRow(&b, fmt.Sprintf("the same while other drains are created and deleted (%.1f changes/s)", r.churnRate), durs(r.churns))
	return b.String()
}

const applyIntro = "envtest (a real kube-apiserver and etcd on this machine), the manager's reconcilers in the bench process " +
	"(`controllers.Setup`, as `cmd/manager` wires them), one router binary reading the table from the Secrets. " +
	"The bench creates the LogApps and LogDrains (address-literal destinations nobody listens on; no traffic goes to those apps), " +
	"waits until the table holds every drain and the manager's work queues are empty, starts the router, and then, " +
	"per probe, sends an app of its own (no other drains) a line every 10 ms over the router's syslog port, " +
	"creates a LogDrain for it pointing at a new loopback listener, and times the create call → the first bytes at the listener: " +
	"the drain reconcile, the table render " +
	"and store, the router's watch, read of the changed shard and apply, the dial, and delivery. Probes run one after another; " +
	"each probe's drain is deleted after it.\n\n"

// routerAdmin is the router's admin address (for SCALE_PHASES).
var routerAdmin string

var noDNS = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("the scale bench makes no DNS queries")
}}

// gate, with SCALE_GATE=DIR, splits the run in two: the fill (creating the objects
// and waiting for the table, at whatever priority the bench was started with) and
// the probes. Once the router is ready it writes DIR/pids (this process, the
// router, and envtest's etcd and kube-apiserver, one per line) and waits for
// DIR/go, so the probes can be run at high priority: a bench-run call renices those
// processes (every thread) and creates DIR/go; ungate writes DIR/done when the
// probes end.
// A gate that cannot be set up is said on stderr, and the probes run at once.
func gate(ctx context.Context, routerPID int) {
	dir := os.Getenv("SCALE_GATE")
	if dir == "" {
		return
	}
	kids := children(os.Getpid())
	pids := make([]int, 0, 2+len(kids))
	pids = append(append(pids, os.Getpid(), routerPID), kids...)
	var b strings.Builder
	for _, p := range pids {
		fmt.Fprintln(&b, p)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids"), []byte(b.String()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "apply: no gate:", err)
		return
	}
	fmt.Fprintf(os.Stderr, "apply: table filled; waiting for %s/go (pids %v)\n", dir, pids)
	if err := waitFor(ctx, 3*time.Hour, time.Second, func() (bool, error) {
		_, err := os.Stat(filepath.Join(dir, "go"))
		return err == nil, nil
	}); err != nil {
		fmt.Fprintln(os.Stderr, "apply: gate:", err)
	}
}

func ungate() {
	if dir := os.Getenv("SCALE_GATE"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "done"), nil, 0o600)
	}
}

// children returns the process IDs whose parent is ppid (envtest's etcd and
// kube-apiserver).
func children(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}
