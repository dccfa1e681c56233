package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// TestLogSessionEndToEnd: a user allowed to create LogSessions in a namespace asks
// for one; the manager answers a URL on the routers; the URL serves the history
// both router processes hold, merged, and then tails new lines.
func TestLogSessionEndToEnd(t *testing.T) {
	s := newStack(t)
	c, ctx := s.cluster, s.ctx
	rs := []*router{s.reserveRouter(t), s.reserveRouter(t)}
	urls := []string{rs[0].URL, rs[1].URL}
	s.startManager(t, false, nil, "--session-base-url", urls[0], "--session-ttl", "30s")
	for i, r := range rs {
		s.startRouter(t, r, "--name", fmt.Sprint("router-", i), "--peers", urls[1-i])
	}

	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	if err := c.Client.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	var token string
	testenv.Eventually(t, "LogApp Ready with a token", func() error {
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(app), app); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(app.Status.Conditions, kubeplexv1alpha1.ReadyCondition) {
			return fmt.Errorf("status %+v", app.Status)
		}
		var sec corev1.Secret
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: "shop", Name: app.Status.TokenSecretName}, &sec); err != nil {
			return err
		}
		token = string(sec.Data[kubeplexv1alpha1.TokenSecretKey])
		return nil
	})
	send := func(router int, i int) error {
		rec := fmt.Sprintf("<190>1 2026-11-25T10:00:00.%06dZ host app web.%d - - line %d", i, router+1, i)
		if err := postLogs(ctx, urls[router], token, wire.AppendFrame(nil, []byte(rec)), nil); err != nil {
			return fmt.Errorf("router %d: %w", router, err)
		}
		return nil
	}
	// The routers take the app from the table in their own time: retry the first line.
	for r := range 2 {
		testenv.Eventually(t, fmt.Sprint("router ", r, " accepts the app's token"), func() error { return send(r, r) })
	}
	for i := 2; i < 10; i++ {
		if err := send(i%2, i); err != nil {
			t.Fatal(err)
		}
	}

	// A reader with create/get on logsessions in shop, and nothing else.
	_, reader := c.User(t, "reader")
	for _, o := range []client.Object{
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "logs"},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"kubeplex.io"}, Resources: []string{"logsessions"}, Verbs: []string{"create", "get"}}}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "logs"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "logs"},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "reader"}}},
	} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(name string, lines int32, tail bool) string {
		s := &kubeplexv1alpha1.LogSession{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: kubeplexv1alpha1.LogSessionSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, Lines: ptr.To(lines), Tail: tail}}
		if err := reader.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, "session URL issued", func() error {
			if err := reader.Get(ctx, client.ObjectKeyFromObject(s), s); err != nil {
				return err
			}
			if s.Status.URL == "" {
				return fmt.Errorf("status %+v", s.Status)
			}
			return nil
		})
		if !strings.HasPrefix(s.Status.URL, urls[0]+"/sessions/") {
			t.Fatalf("url %q", s.Status.URL)
		}
		return s.Status.URL
	}

	url := ask("history", 8, false)
	var body string
	// The routers learn the signing key with the table: poll until they know it.
	testenv.Eventually(t, "session served", func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }() // read to the end
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		body = string(b)
		return nil
	})
	var want []string
	for i := 2; i < 10; i++ {
		want = append(want, fmt.Sprintf("2026-11-25T10:00:00.%06d+00:00 app[web.%d]: line %d", i, i%2+1, i))
	}
	if got := strings.TrimSuffix(body, "\n"); got != strings.Join(want, "\n") {
		t.Fatalf("history:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}

	resp, err := http.Get(ask("tail", 0, true))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tail session: %d", resp.StatusCode)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Headers come after the peers answered, so both routers' tails are open.
	if err := send(1, 100); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if !strings.HasSuffix(l, "app[web.2]: line 100") {
			t.Fatalf("tail line %q", l)
		}
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("no tail line from the other router")
	}
}
