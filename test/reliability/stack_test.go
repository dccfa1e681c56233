package reliability

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

const (
	systemNS   = "kubeplex-system"
	routesName = "kubeplex-routes"
)

// stack is a real kube-apiserver + etcd with a manager and a router binary on it, as
// a cluster runs them, the router reading the manager's table and the manager
// copying the router's /status into LogDrain status every second.
type stack struct {
	c               *testenv.Cluster
	ctx             context.Context
	manager, router *testenv.Process
	base, admin     string // router ingest and admin URLs
	managerMetrics  string
}

func startStack(t *testing.T, routerArgs ...string) *stack {
	t.Helper()
	c := testenv.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	for _, ns := range []string{systemNS, "shop"} {
		if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	kc := c.AdminKubeconfig(t)
	addr, admin, metrics := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	s := &stack{c: c, ctx: ctx, base: "http://" + addr, admin: "http://" + admin, managerMetrics: "http://" + metrics + "/metrics"}
	s.manager = testenv.Start(t, managerBin, nil, "--kubeconfig", kc, "--namespace", systemNS,
		"--routes-secret", routesName, "--metrics-bind-address", metrics, "--health-probe-bind-address", "0",
		"--leader-elect=false", "--webhook-port", "0", "--allow-cidrs", "127.0.0.0/8",
		"--router-service", "", "--router-status-urls", s.admin+"/status", "--router-status-interval", "1s",
		"--drain-status-interval", "1s", "--session-base-url", s.base, "--router-url", s.base+"/logs", "--zap-log-level", "debug")
	args := append([]string{"--http-addr", addr, "--admin-addr", admin, "--routes-secret", systemNS + "/" + routesName,
		"--kubeconfig", kc, "--allow-cidrs", "127.0.0.0/8", "--log-level", "debug"}, routerArgs...)
	s.router = testenv.Start(t, routerBin, nil, args...)
	testenv.WaitHTTP(t, s.base+"/readyz")
	return s
}

// app creates a LogApp and returns its ingest token once it is Ready.
func (s *stack) app(t *testing.T, name string) string {
	t.Helper()
	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}}
	if err := s.c.Client.Create(s.ctx, app); err != nil {
		t.Fatal(err)
	}
	var token string
	testenv.Eventually(t, "LogApp "+name+" Ready", func() error {
		if err := s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(app), app); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(app.Status.Conditions, kubeplexv1alpha1.ReadyCondition) || app.Status.TokenSecretName == "" {
			return fmt.Errorf("status %+v", app.Status)
		}
		var sec corev1.Secret
		if err := s.c.Client.Get(s.ctx, client.ObjectKey{Namespace: "shop", Name: app.Status.TokenSecretName}, &sec); err != nil {
			return err
		}
		token = string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
		return nil
	})
	return token
}

// drain creates d and returns its drain token once it is Ready and the router runs it.
func (s *stack) drain(t *testing.T, d *kubeplexv1alpha1.LogDrain) string {
	t.Helper()
	d.Namespace = "shop"
	if err := s.c.Client.Create(s.ctx, d); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "LogDrain "+d.Name+" Ready and run by the router", func() error {
		if err := s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
			return fmt.Errorf("status %+v", d.Status)
		}
		st, err := fetchJSON[map[string]any](s.admin + "/status")
		if err != nil {
			return err
		}
		if drains, _ := st["drains"].(map[string]any); drains["shop/"+d.Name] == nil {
			return fmt.Errorf("router does not run shop/%s yet", d.Name)
		}
		return nil
	})
	return d.Status.Token
}

func fetchJSON[T any](url string) (T, error) {
	var v T
	b, err := fetch(url)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal([]byte(b), &v)
}

func fetch(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestScenario1DropsInLogDrainStatus: scenario 1 through the whole stack. A syslog
// drain refuses while 3,000 lines arrive at a router whose queue holds 500; after
// recovery the drop count announced in-band (L10) is exactly the LogDrain's
// status.dropped, which the manager copied from the router's /status.
func TestScenario1DropsInLogDrainStatus(t *testing.T) {
	s := startStack(t, "--queue-size", "500")
	books := NewBooks()
	proxy := proxiedSyslog(t, books)
	token := s.app(t, "web")
	d := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "archive"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: "syslog://" + proxy.Addr}}
	dt := s.drain(t, d)
	books.Open(dt, "web")
	if err := proxy.Set(Refuse); err != nil {
		t.Fatal(err)
	}
	g := &Generator{URL: s.base + "/logs", Token: token, App: "web"}
	pace(context.Background(), t, g, 3000, 3000)
	if err := proxy.Set(Pass); err != nil {
		t.Fatal(err)
	}
	// The L10 count may include platform lines (kubeplex[api], from the manager) that
	// the full queue dropped too: every generated line is delivered or announced, and
	// the router's count is the in-band one.
	var bk Book
	var rs routing.DrainStatus
	if err := Until(2*time.Minute, func() bool {
		bk = books.Get(dt)
		st, err := fetchJSON[routing.RouterStatus](s.admin + "/status")
		rs = st.Drains["shop/archive"]
		return err == nil && bk.Balance(g.Sent()) <= 0 && rs.Queued == 0 && rs.Dropped == bk.Announced
	}); err != nil {
		t.Fatalf("sent %d, delivered %d, announced %d; router /status %+v", g.Sent(), bk.Delivered, bk.Announced, rs)
	}
	// A platform line that arrived during the burst (the manager's "Drain … added",
	// posted once the router runs the drain) takes a queue slot, so it may displace
	// one of the newest generated lines: at most one per such line. Twice in CI-like
	// runs under load 2 of the newest were missing with no platform line (and still
	// announced: the balance above is exact), which a batch caught by the proxy's
	// switch from Refuse to Pass explains; drop-oldest is asserted up to that slack
	// (1% of the queue), the accounting exactly.
	const slack = 5
	platform := max(-bk.Balance(g.Sent()), 0)
	if missing := books.Missing(dt, g.Sent()-500, g.Sent()); missing > platform+slack {
		t.Errorf("%d of the newest 500 lines missing (%d platform lines shared the queue, slack %d)", missing, platform, slack)
	} else if missing > 0 {
		t.Logf("%d of the newest 500 lines missing, announced (%d platform lines shared the queue)", missing, platform)
	}
	if bk.Announced == 0 {
		t.Fatalf("nothing dropped: the queue (500) held %d lines?", g.Sent())
	}
	testenv.Eventually(t, "LogDrain status.dropped = the L10 count", func() error {
		if err := s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		if d.Status.Dropped != bk.Announced {
			return fmt.Errorf("status.dropped %d, announced in-band %d", d.Status.Dropped, bk.Announced)
		}
		return nil
	})
	t.Logf("sent %d: delivered %d, announced %d in-band (%d of them platform lines), LogDrain status dropped %d, delivered %d",
		g.Sent(), bk.Delivered, bk.Announced, -bk.Balance(g.Sent()), d.Status.Dropped, d.Status.Delivered)
}

// TestScenario10NoSecretInAnything: one stack run through credentialed HTTP drains
// (a credentials Secret, URL userinfo, the manager's HMAC key), a drain refused
// because its Secret did not opt in, drains that fail (401, 500, a refused port), a
// log session and forged session URLs, wrong ingest tokens; then everything the run
// produced — both processes' whole output, every Event, every kubeplex object's
// status, both /metrics, the router's /status and the error answers — is searched
// for every secret value the cluster holds (raw and base64).
func TestScenario10NoSecretInAnything(t *testing.T) {
	s := startStack(t)
	token := s.app(t, "web")
	// An HTTP receiver that refuses the first batches with 401 and 500, then takes.
	var n int
	answers := map[int]int{0: 401, 1: 500}
	sink := NewHTTPSink(func(i int) Answer {
		n = i
		if c, ok := answers[i]; ok {
			return Answer{Code: c}
		}
		return Answer{Code: 200}
	})
	t.Cleanup(sink.Close)
	failing := NewHTTPSink(func(int) Answer { return Answer{Code: 500} })
	t.Cleanup(failing.Close)
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "drain-creds", Namespace: "shop"}, Type: kubeplexv1alpha1.DrainCredentialsSecretType,
		StringData: map[string]string{"username": "u-5ecre7-user-0001", "password": "p-5ecre7-pass-0001"}}
	private := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-creds", Namespace: "shop"},
		StringData: map[string]string{"username": "u-5ecre7-user-0002", "password": "p-5ecre7-pass-0002"}}
	for _, o := range []client.Object{creds, private} {
		if err := s.c.Client.Create(s.ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	hostport := strings.TrimPrefix(sink.URL, "http://")
	s.drain(t, &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "with-creds"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: sink.URL + "/logs",
			CredentialsSecretRef: &kubeplexv1alpha1.CredentialsSecretReference{Name: creds.Name}}})
	s.drain(t, &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "with-userinfo"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"},
			URL: "http://u-5ecre7-user-0003:p-5ecre7-pass-0003@" + strings.TrimPrefix(failing.URL, "http://") + "/logs?k=q-5ecre7-query-0003"}})
	s.drain(t, &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "refused-port"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"},
			URL: "http://u-5ecre7-user-0004:p-5ecre7-pass-0004@" + testenv.FreeAddr(t) + "/logs"}})
	// Not opted in: refused, and neither the password nor the username goes anywhere.
	refused := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "not-allowed", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: "http://" + hostport + "/logs",
			CredentialsSecretRef: &kubeplexv1alpha1.CredentialsSecretReference{Name: private.Name}}}
	if err := s.c.Client.Create(s.ctx, refused); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "the drain with a private Secret refused", func() error {
		if err := s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(refused), refused); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(refused.Status.Conditions, kubeplexv1alpha1.ReadyCondition); c == nil || c.Reason != kubeplexv1alpha1.SecretNotAllowedReason {
			return fmt.Errorf("conditions %+v", refused.Status.Conditions)
		}
		return nil
	})

	// Traffic, failures, sessions, bad requests.
	g := &Generator{URL: s.base + "/logs", Token: token, App: "web"}
	var errorAnswers []string
	for range 5 {
		if _, err := g.Send(10, 10); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Until(t, "the credentialed drain took a batch after its 401 and 500", func() bool { return len(sink.Accepted()) > 0 })
	for _, bad := range []string{"t.00000000-0000-4000-8000-000000000000", token + "x", "p.00000000-0000-4000-8000-000000000000"} {
		req, _ := http.NewRequest(http.MethodPost, s.base+"/logs", strings.NewReader(string(wire.AppendFrame(nil, []byte("<13>1 - h app web.1 - - x")))))
		req.Header.Set("Content-Type", wire.ContentType)
		req.SetBasicAuth("token", bad)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // read
		errorAnswers = append(errorAnswers, fmt.Sprintf("%d %v %s", resp.StatusCode, resp.Header, b))
	}
	ls := &kubeplexv1alpha1.LogSession{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "look"},
		Spec: kubeplexv1alpha1.LogSessionSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, Lines: ptr.To(int32(5))}}
	if err := s.c.Client.Create(s.ctx, ls); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "session URL issued", func() error {
		if err := s.c.Client.Get(s.ctx, client.ObjectKeyFromObject(ls), ls); err != nil {
			return err
		}
		if ls.Status.URL == "" {
			return fmt.Errorf("status %+v", ls.Status)
		}
		return nil
	})
	sessionURL := ls.Status.URL
	testenv.Eventually(t, "session served", func() error {
		resp, err := http.Get(sessionURL)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close() // read
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET session: %d", resp.StatusCode)
		}
		return nil
	})
	id := sessionURL[strings.LastIndex(sessionURL, "/")+1:]
	payload := id[:strings.LastIndex(id, ".")]
	for _, forged := range []string{payload + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", payload, "x." + strings.Repeat("A", 5000)} {
		b, err := fetch(s.base + "/sessions/" + forged)
		if err != nil {
			t.Fatal(err)
		}
		errorAnswers = append(errorAnswers, b)
	}
	testenv.Eventually(t, "drain errors in LogDrain status", func() error {
		var l kubeplexv1alpha1.LogDrainList
		if err := s.c.Client.List(s.ctx, &l, client.InNamespace("shop")); err != nil {
			return err
		}
		for _, d := range l.Items {
			if d.Name != "with-creds" && d.Name != "not-allowed" && d.Status.LastError == "" {
				return fmt.Errorf("%s has no lastError yet", d.Name)
			}
		}
		return nil
	})

	// Every secret the cluster holds, raw and base64, and the session signature.
	var secrets []string
	var sl corev1.SecretList
	if err := s.c.Client.List(s.ctx, &sl); err != nil {
		t.Fatal(err)
	}
	for _, sec := range sl.Items {
		if sec.Labels[kubeplexv1alpha1.SecretRoleLabel] == kubeplexv1alpha1.SecretRoleRoutes {
			continue // the table holds the others; searched for through them
		}
		for k, v := range sec.Data {
			if k == kubeplexv1alpha1.DrainTokenSecretKey || k == kubeplexv1alpha1.DrainConfigSecretKey || len(v) < 8 {
				continue // a drain token is an identifier, shown in status by design
			}
			secrets = append(secrets, secretForms(string(v))...)
			var inner any
			if json.Unmarshal(v, &inner) == nil {
				secrets = append(secrets, jsonStrings(inner)...)
			}
		}
	}
	for _, v := range []string{"p-5ecre7-pass-0003", "p-5ecre7-pass-0004", "q-5ecre7-query-0003", "u-5ecre7-user-0003:p-5ecre7-pass-0003"} {
		secrets = append(secrets, secretForms(v)...)
	}
	if sig := id[strings.LastIndex(id, ".")+1:]; len(sig) >= 8 {
		secrets = append(secrets, sig)
	}
	secrets = append(secrets, id)

	// Everything the run produced.
	where := map[string]string{"manager output": s.manager.Out.String(), "router output": s.router.Out.String(),
		"error answers": strings.Join(errorAnswers, "\n")}
	for name, u := range map[string]string{"router /metrics": s.admin + "/metrics", "router /status": s.admin + "/status", "manager /metrics": s.managerMetrics} {
		b, err := fetch(u)
		if err != nil {
			t.Fatal(err)
		}
		where[name] = b
	}
	var ev corev1.EventList
	var ev2 eventsv1.EventList
	var apps kubeplexv1alpha1.LogAppList
	var drains kubeplexv1alpha1.LogDrainList
	var sessions kubeplexv1alpha1.LogSessionList
	for _, l := range []client.ObjectList{&ev, &ev2, &apps, &drains, &sessions} {
		if err := s.c.Client.List(s.ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for i := range sessions.Items {
		sessions.Items[i].Status.URL = "" // the session URL is the one place its signature belongs
	}
	for name, v := range map[string]any{"Events": ev.Items, "events.k8s.io Events": ev2.Items, "LogApp status": statuses(apps.Items),
		"LogDrain status": statuses(drains.Items), "LogSession status": statuses(sessions.Items)} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		where[name] = string(b)
	}
	if len(ev.Items)+len(ev2.Items) == 0 || !strings.Contains(where["LogDrain status"], "lastError") || !strings.Contains(where["router output"], "drain") {
		t.Fatalf("the run produced too little to search (%d events): the check would prove nothing", len(ev.Items)+len(ev2.Items))
	}
	total := 0
	for name, text := range where {
		total += len(text)
		for _, sec := range secrets {
			if strings.Contains(text, sec) {
				i := strings.Index(text, sec)
				t.Errorf("%s contains a secret (%d chars starting %q) in %q", name, len(sec), sec[:4], text[max(0, i-80):min(len(text), i+len(sec)+20)])
			}
		}
	}
	t.Logf("searched %d bytes from %d sources for %d secret forms (%d Secrets in the cluster); %d requests at the credentialed drain",
		total, len(where), len(secrets), len(sl.Items), n+1)
}

// secretForms is v as it could leak: raw, and base64 (std and URL alphabets).
func secretForms(v string) []string {
	return []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))}
}

// jsonStrings returns the "key" values inside v (the session signing keys: hex,
// and the key bytes in base64), not their ids or times, which are not secret.
func jsonStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, jsonStrings(e)...)
		}
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "key" && len(s) >= 8 {
				out = append(out, s)
				if b, err := hex.DecodeString(s); err == nil {
					out = append(out, secretForms(string(b))[1:]...)
				}
				continue
			}
			out = append(out, jsonStrings(e)...)
		}
	}
	return out
}

func statuses[T any](items []T) []any {
	out := make([]any, 0, len(items))
	for _, it := range items {
		b, _ := json.Marshal(it)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		out = append(out, m["status"])
	}
	return out
}
