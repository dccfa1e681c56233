package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// TestPlatformLinesOncePerEvent runs two managers (leader election) and two routers,
// each manager posting to a different router, and counts the copies of a
// "Drain … added" and "Drain … removed" line in an existing drain: one each, written by
// the leader, however many replicas run (routers no longer announce table changes).
// Then the API lines: a LogDrain created, changed and deleted by named field managers,
// each line once, with the actor and without the URL's credentials.
func TestPlatformLinesOncePerEvent(t *testing.T) {
	s := newStack(t)
	c, ctx := s.cluster, s.ctx
	routers := []*router{s.startRouter(t, nil), s.startRouter(t, nil)}
	for _, r := range routers {
		s.startManager(t, true, r, "--router-status-interval", "500ms")
	}
	routerURLs, adminURLs := s.routerURLs(), s.adminURLs()
	sink := startSyslogSink(t)
	sink2 := startSyslogSink(t)

	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	first := drainTo("first", sink.addr)
	for _, o := range []client.Object{app, first} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	token := appToken(t, c, app)
	firstToken := drainReady(t, c, first)
	waitRouters(t, c, adminURLs)
	// The first drain delivers from both routers before the second is made, so the
	// second's "added" line cannot come with the table that brings the first (a line
	// about a table change reaches the drains the routers already run).
	markersThrough(t, sink, routerURLs, token, "marker-0")

	second := drainTo("second", sink2.addr)
	if err := c.Client.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	secondToken := drainReady(t, c, second)
	added := "Drain " + secondToken + " added (syslog://" + sink2.addr + ")"
	countOnce(t, sink, routerURLs, token, "marker-1", added, "router")
	// The new drain gets its own line too: it is posted once both routers run it.
	countOnce(t, sink2, routerURLs, token, "marker-1b", added, "router")

	if err := c.Client.Delete(ctx, second); err != nil {
		t.Fatal(err)
	}
	countOnce(t, sink, routerURLs, token, "marker-2", "Drain "+secondToken+" removed", "router")

	// API lines: who did it (the field manager), which fields, never a secret.
	third := drainTo("third", "unused")
	third.Spec.URL = "https://logs.example.com/ingest?api_key=SECRET-KEY-1"
	if err := c.Client.Create(ctx, third, client.FieldOwner("alice")); err != nil {
		t.Fatal(err)
	}
	countOnce(t, sink, routerURLs, token, "marker-3", "LogDrain third created (https://logs.example.com) by alice", "api")
	// A merge patch carries no resourceVersion, so the manager's status writes between
	// reading and writing cannot make it fail with a conflict (an Update could).
	before := third.DeepCopy()
	third.Spec.URL = "https://user:SECRET-PW-2@logs2.example.com:8443/x"
	if err := c.Client.Patch(ctx, third, client.MergeFrom(before), client.FieldOwner("bob")); err != nil {
		t.Fatal(err)
	}
	countOnce(t, sink, routerURLs, token, "marker-4", "LogDrain third changed spec.url (now https://logs2.example.com:8443) by bob", "api")
	if err := c.Client.Delete(ctx, third); err != nil {
		t.Fatal(err)
	}
	countOnce(t, sink, routerURLs, token, "marker-5", "LogDrain third deleted", "api")
	msgs, _ := sink.snapshot()
	for _, m := range msgs {
		if strings.Contains(string(m.Text), "SECRET") {
			t.Errorf("a secret reached the stream: %s[%s] %q", m.AppName, m.ProcID, m.Text)
		}
	}

	// The first drain came with the app: it too got its own "added" line, once.
	if n := count(sink, "Drain "+firstToken+" added (syslog://"+sink.addr+")", "router"); n != 1 {
		t.Errorf("%d copies of the first drain's own added line, want 1", n)
	}
}

func drainTo(name, addr string) *kubeplexv1alpha1.LogDrain {
	return &kubeplexv1alpha1.LogDrain{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"},
			URL: "syslog://" + addr},
	}
}

func appToken(t *testing.T, c *cluster, app *kubeplexv1alpha1.LogApp) string {
	t.Helper()
	ctx := contextFor(t, testenv.WaitTimeout)
	var token string
	testenv.Eventually(t, "LogApp Ready", func() error {
		var got kubeplexv1alpha1.LogApp
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(app), &got); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
			return fmt.Errorf("status %+v", got.Status)
		}
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: app.Namespace, Name: got.Status.TokenSecretName}, &sec); err != nil {
			return err
		}
		token = string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
		return nil
	})
	return token
}

func drainReady(t *testing.T, c *cluster, d *kubeplexv1alpha1.LogDrain) string {
	t.Helper()
	ctx := contextFor(t, testenv.WaitTimeout)
	var tok string
	testenv.Eventually(t, "LogDrain "+d.Name+" Ready", func() error {
		var got kubeplexv1alpha1.LogDrain
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(d), &got); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, kubeplexv1alpha1.ReadyCondition) || got.Status.Token == "" {
			return fmt.Errorf("status %+v", got.Status)
		}
		tok = got.Status.Token
		return nil
	})
	return tok
}

// waitRouters waits until every router runs the stored table.
func waitRouters(t *testing.T, c *cluster, urls []string) {
	t.Helper()
	ctx := contextFor(t, testenv.WaitTimeout)
	testenv.Eventually(t, "routers run the stored table", func() error {
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: systemNS, Name: routesName}, &sec); err != nil {
			return err
		}
		want := sec.Annotations[kubeplexv1alpha1.RoutesVersionAnnotation]
		for _, u := range urls {
			st, err := routerStatus(u)
			if err != nil {
				return err
			}
			if st.Version != want {
				return fmt.Errorf("router %s runs %q, stored %q", u, st.Version, want)
			}
		}
		return nil
	})
}

func count(s *syslogSink, text, proc string) int {
	msgs, _ := s.snapshot()
	n := 0
	for _, m := range msgs {
		if string(m.Text) == text && m.AppName == "kubeplex" && m.ProcID == proc {
			n++
		}
	}
	return n
}

// countOnce waits for text at the sink, then sends a marker line through every
// router and waits for all of them: each router delivers in order, so a second copy
// of text from any replica would have arrived before its marker.
func countOnce(t *testing.T, s *syslogSink, routerURLs []string, token, marker, text, proc string) {
	t.Helper()
	testenv.Eventually(t, "platform line "+text, func() error {
		if count(s, text, proc) == 0 {
			msgs, _ := s.snapshot()
			return fmt.Errorf("not yet; %d messages", len(msgs))
		}
		return nil
	})
	markersThrough(t, s, routerURLs, token, marker)
	if n := count(s, text, proc); n != 1 {
		t.Errorf("%d copies of %q, want 1", n, text)
	}
}

// markersThrough sends a marker line through every router and waits until the sink
// has all of them.
func markersThrough(t *testing.T, s *syslogSink, routerURLs []string, token, marker string) {
	t.Helper()
	// Sent again until it arrives: a router that has not loaded the app's current
	// table yet refuses the token (401) or has no drain to deliver it to.
	testenv.Eventually(t, "markers through every router", func() error {
		msgs, _ := s.snapshot()
		for i, u := range routerURLs {
			want := fmt.Sprintf("%s-%d", marker, i)
			if slices.ContainsFunc(msgs, func(m wire.Message) bool { return string(m.Text) == want }) {
				continue
			}
			body := wire.AppendFrame(nil, []byte("<190>1 2026-11-25T10:00:00Z h app web.1 - - "+want))
			req, err := http.NewRequest(http.MethodPost, u+"/logs", strings.NewReader(string(body)))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", wire.ContentType)
			req.SetBasicAuth("token", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close() // only the status is checked
			return fmt.Errorf("%s not yet (last POST: %d)", want, resp.StatusCode)
		}
		return nil
	})
}
