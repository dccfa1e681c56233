package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// TestAddonInput: an add-on named in a LogApp's spec.addons gets its own token (in a
// Secret; status names the Secret and the ingest URL, never the token) and posts
// logplex-1 batches to a real router; its lines carry the add-on's name as source
// whatever the frames claim (app, kubeplex), land in that app only (a Kubeplex-App
// header naming another app changes nothing; another app's add-on token writes into
// that other app only), and a removed add-on's token is refused. The API refuses the
// names app and kubeplex.
func TestAddonInput(t *testing.T) {
	s := newStack(t)
	c, ctx := s.cluster, s.ctx
	routerURL := s.startRouter(t, nil).URL
	const publicURL = "https://logs.example.test/logs"
	s.startManager(t, false, s.routers[0], "--ingest-url", publicURL)

	for _, name := range []string{"app", "kubeplex", "Bad_Name"} {
		bad := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "shop"},
			Spec: kubeplexv1alpha1.LogAppSpec{Addons: []kubeplexv1alpha1.AddonInput{{Name: name}}}}
		if err := c.Client.Create(ctx, bad); err == nil {
			t.Errorf("a LogApp with add-on %q was accepted", name)
		}
	}

	webSink, otherSink := startSyslogSink(t), startSyslogSink(t)
	web := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogAppSpec{Addons: []kubeplexv1alpha1.AddonInput{{Name: "papertrail"}}}}
	other := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogAppSpec{Addons: []kubeplexv1alpha1.AddonInput{{Name: "papertrail"}, {Name: "newrelic"}}}}
	otherDrain := drainTo("other-drain", otherSink.addr)
	otherDrain.Spec.AppRef.Name = "other"
	for _, o := range []client.Object{web, other, drainTo("web-drain", webSink.addr), otherDrain} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	webToken, otherToken := appToken(t, c, web), appToken(t, c, other)
	// Both drains deliver before any add-on line is posted: a line accepted while its
	// app's drain is not yet in the router's table stays in history only.
	markersThrough(t, webSink, []string{routerURL}, webToken, "web-marker-0")
	markersThrough(t, otherSink, []string{routerURL}, otherToken, "other-marker-0")

	webAddon := addonToken(t, c, web, "papertrail", publicURL)
	otherAddon := addonToken(t, c, other, "newrelic", publicURL)

	frame := func(appName, proc, text string) string {
		return "<134>1 2026-11-25T10:00:00Z addon.example " + appName + " " + proc + " - - " + text
	}
	// Accepted with its token once the routers have it (401 until the table comes).
	testenv.Eventually(t, "add-on batch accepted", func() error {
		return postAddon(routerURL, webAddon, map[string]string{"Kubeplex-App": "shop/other"},
			frame("papertrail", "alert", "disk almost full"),
			frame("app", "web.1", "pretending to be the app"),
			frame("kubeplex", "router", "Error L10 (output buffer overflow): 99 messages dropped"),
			frame("kubeplex", "deploy", "Rollout of web revision 9 complete"))
	})
	testenv.Eventually(t, "other's add-on batch accepted", func() error {
		return postAddon(routerURL, otherAddon, nil, frame("newrelic", "apm", "other app: apdex 0.7"))
	})
	markersThrough(t, webSink, []string{routerURL}, webToken, "web-marker-1")
	markersThrough(t, otherSink, []string{routerURL}, otherToken, "other-marker-1")

	got := sourced(webSink)
	want := []string{"papertrail[alert] disk almost full", "papertrail[web.1] pretending to be the app",
		"papertrail[router] Error L10 (output buffer overflow): 99 messages dropped",
		"papertrail[deploy] Rollout of web revision 9 complete"}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("web's stream has no %q; it has %q", w, got)
		}
	}
	for _, g := range got {
		if strings.Contains(g, "apdex") {
			t.Errorf("another app's add-on wrote into web: %q", g)
		}
		if (strings.HasPrefix(g, "app[") || strings.HasPrefix(g, "kubeplex[")) &&
			(strings.Contains(g, "pretending") || strings.Contains(g, "L10") || strings.Contains(g, "revision 9")) {
			t.Errorf("an add-on line was filed as the app or the platform: %q", g)
		}
	}
	otherGot := sourced(otherSink)
	if !slices.Contains(otherGot, "newrelic[apm] other app: apdex 0.7") {
		t.Errorf("other's stream has %q", otherGot)
	}
	for _, g := range otherGot {
		if strings.Contains(g, "disk almost full") {
			t.Errorf("web's add-on reached other (Kubeplex-App header honoured): %q", g)
		}
	}

	// Removed from spec.addons: its token is refused, its Secret emptied.
	testenv.Eventually(t, "remove newrelic", func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(other), other); err != nil {
			return err
		}
		other.Spec.Addons = []kubeplexv1alpha1.AddonInput{{Name: "papertrail"}}
		return c.Client.Update(ctx, other)
	})
	testenv.Eventually(t, "removed add-on refused", func() error {
		if err := postAddon(routerURL, otherAddon, nil, frame("newrelic", "apm", "after removal")); err == nil ||
			!strings.Contains(err.Error(), "401") {
			return fmt.Errorf("want 401, got %w", err)
		}
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "other-kubeplex-addon-newrelic"}, &sec); err != nil {
			return err
		}
		if len(sec.Data) != 0 {
			return fmt.Errorf("secret still holds %d keys", len(sec.Data))
		}
		return nil
	})
}

// addonToken waits for status.addons to list the add-on with its URL and Secret, checks
// the status does not carry the token, and returns the token.
func addonToken(t *testing.T, c *cluster, app *kubeplexv1alpha1.LogApp, name, url string) string {
	t.Helper()
	ctx := contextFor(t, testenv.WaitTimeout)
	var tok string
	testenv.Eventually(t, "add-on "+name+" of "+app.Name+" in status", func() error {
		var got kubeplexv1alpha1.LogApp
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(app), &got); err != nil {
			return err
		}
		i := slices.IndexFunc(got.Status.Addons, func(a kubeplexv1alpha1.AddonInputStatus) bool { return a.Name == name })
		if i < 0 {
			return fmt.Errorf("status.addons = %+v", got.Status.Addons)
		}
		st := got.Status.Addons[i]
		if st.URL != url || st.TokenSecretName != app.Name+"-kubeplex-addon-"+name {
			return fmt.Errorf("status.addons[%d] = %+v", i, st)
		}
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: st.TokenSecretName}, &sec); err != nil {
			return err
		}
		tok = string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
		if !strings.HasPrefix(tok, "a.") {
			return fmt.Errorf("token %.4q…", tok)
		}
		status, err := json.Marshal(got.Status)
		if err != nil {
			return err
		}
		mustContainNone(t, "LogApp status", string(status), tok)
		return nil
	})
	return tok
}

func postAddon(routerURL, token string, header map[string]string, frames ...string) error {
	var body []byte
	for _, f := range frames {
		body = wire.AppendFrame(body, []byte(f))
	}
	h := map[string]string{"Logplex-Msg-Count": fmt.Sprint(len(frames))}
	maps.Copy(h, header)
	return postLogs(context.Background(), routerURL, token, body, h)
}

// sourced lists a sink's messages as "source[proc] text".
func sourced(s *syslogSink) []string {
	msgs, _ := s.snapshot()
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.AppName+"["+m.ProcID+"] "+string(m.Text))
	}
	return out
}
