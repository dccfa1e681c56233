package cli_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// TestDrainsAndApps drives `drains add/list/remove` and `apps` against a real API
// server, manager and router: what the CLI writes is what the API server holds, and
// what it lists is the health the manager observed from the router.
func TestDrainsAndApps(t *testing.T) {
	s := newStack(t, 1)
	ctx := ctxFor(t)
	token := s.app(t, "web")
	sink := drainpeer.NewSyslogSink(t, nil)

	out := mustCLI(t, s.admin, "drains", "add", "web", "syslog://"+sink.Addr, "--name", "archive", "-n", s.ns)
	if !strings.Contains(out, "drain archive added to app web") {
		t.Errorf("drains add said %q", out)
	}
	var d kubeplexv1alpha1.LogDrain
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "archive"}, &d); err != nil {
		t.Fatalf("LogDrain archive not in the API server: %v", err)
	}
	if d.Spec.AppRef.Name != "web" || d.Spec.URL != "syslog://"+sink.Addr {
		t.Errorf("LogDrain spec %+v", d.Spec)
	}

	// Credentials in a URL and the references become the spec, but never the listing.
	mustCLI(t, s.admin, "drains", "add", "web", "https://alice:s3cret-pw@127.0.0.1:1/in?token=abc123", "--name", "search",
		"--credentials-secret", "search-creds", "--ca-secret", "search-ca", "-n", s.ns)
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: "search"}, &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec.CredentialsSecretRef == nil || d.Spec.CredentialsSecretRef.Name != "search-creds" ||
		d.Spec.TLS == nil || d.Spec.TLS.CASecretRef == nil || *d.Spec.TLS.CASecretRef != (kubeplexv1alpha1.SecretKeyReference{Name: "search-ca", Key: "ca.crt"}) {
		t.Errorf("LogDrain search spec %+v", d.Spec)
	}
	// A generated name when none is given.
	out = mustCLI(t, s.admin, "drains", "add", "web", "syslog://127.0.0.1:9", "-n", s.ns)
	generated := regexp.MustCompile(`drain (web-[a-z0-9]+) added`).FindStringSubmatch(out)
	if generated == nil {
		t.Fatalf("drains add without --name said %q", out)
	}

	testenv.Eventually(t, "drains list shows archive Ready, Delivering and counting", func() error {
		// A line per try: the first may reach the router before its table has the drain.
		s.send(t, s.routers[0], token, line{proc: "web.1", text: "to the drain"})
		out, errOut, err := runCLI(t, s.admin, "drains", "list", "web", "-n", s.ns)
		if err != nil {
			return fmt.Errorf("%w: %s", err, errOut)
		}
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) >= 7 && f[0] == "archive" {
				if f[1] != "web" || f[2] != "syslog://"+sink.Addr || f[3] != "True" || f[4] != "True" || f[5] == "0" || f[6] != "0" {
					return fmt.Errorf("archive row %q", l)
				}
				return nil
			}
		}
		return fmt.Errorf("no archive row in\n%s", out)
	})
	out = mustCLI(t, s.admin, "drains", "list", "-n", s.ns)
	if strings.Contains(out, "s3cret-pw") || strings.Contains(out, "alice") || strings.Contains(out, "abc123") {
		t.Errorf("drains list shows credentials:\n%s", out)
	}
	if !strings.Contains(out, "https://xxxxx@127.0.0.1:1/in?token=xxxxx") {
		t.Errorf("drains list does not show the redacted URL:\n%s", out)
	}
	if !strings.Contains(out, "SecretNotFound") {
		t.Errorf("drains list does not say why search is not Ready:\n%s", out)
	}

	out = mustCLI(t, s.admin, "apps", "-n", s.ns)
	if !regexp.MustCompile(`(?m)^web\s+True\s+0\s+0\s+0\s+1/3 healthy$`).MatchString(out) {
		t.Errorf("apps:\n%s", out)
	}

	mustCLI(t, s.admin, "drains", "remove", generated[1], "-n", s.ns)
	out = mustCLI(t, s.admin, "drains", "remove", "search", "-n", s.ns)
	if !strings.Contains(out, "drain search removed") {
		t.Errorf("drains remove said %q", out)
	}
	for _, name := range []string{"search", generated[1]} {
		testenv.Eventually(t, "LogDrain "+name+" gone", func() error {
			err := s.Client.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, &d)
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("get: %w", err)
			}
			return nil
		})
	}

	t.Run("errors are one clear line", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"app not found", []string{"drains", "add", "nope", "syslog://127.0.0.1:9"}, `error: app not found: no LogApp "nope" in namespace "` + s.ns + `"`},
			{"bad scheme", []string{"drains", "add", "web", "ftp://127.0.0.1:21"}, "error: invalid logdrain: spec.url: url scheme must be one of syslog, syslog+tls, http, https"},
			{"syslog without port", []string{"drains", "add", "web", "syslog://127.0.0.1"}, "syslog urls must name a port"},
			{"name taken", []string{"drains", "add", "web", "syslog://127.0.0.1:9", "--name", "archive"}, `error: a drain named "archive" already exists`},
			{"remove unknown", []string{"drains", "remove", "nope"}, `error: no drain "nope" in namespace "` + s.ns + `"`},
			{"logs of unknown app", []string{"logs", "nope"}, `error: app not found: no LogApp "nope"`},
			{"num out of range", []string{"logs", "web", "--num", "1501"}, "error: --num must be between 0 and 1500"},
			{"two process filters", []string{"logs", "web", "-d", "web.1", "-p", "web"}, "error: --dyno and --process-type both filter"},
		}
		for _, tt := range tests {
			out, errOut, err := runCLI(t, s.admin, append(tt.args, "-n", s.ns)...)
			if err == nil {
				t.Errorf("%s: exit 0, stdout %q", tt.name, out)
				continue
			}
			if !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("%s: stderr %q, want one line containing %q", tt.name, errOut, tt.want)
			}
		}
	})

	t.Run("forbidden quotes the verb and resource", func(t *testing.T) {
		kc, _ := s.User(t, "viewer-"+s.ns)
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "drain-reader", Namespace: s.ns},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{kubeplexv1alpha1.GroupVersion.Group},
				Resources: []string{"logdrains", "logapps"}, Verbs: []string{"get", "list"}}},
		}
		s.bind(t, ctx, role, "viewer-"+s.ns)
		// The read-only user may list but not add or remove.
		testenv.Eventually(t, "the viewer may list drains", func() error {
			_, errOut, err := runCLI(t, kc, "drains", "list", "-n", s.ns)
			if err != nil {
				return fmt.Errorf("%w: %s", err, errOut)
			}
			return nil
		})
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"drains", "add", "web", "syslog://127.0.0.1:9"}, `cannot create resource "logdrains" in API group "kubeplex.io"`},
			{[]string{"drains", "remove", "archive"}, `cannot delete resource "logdrains"`},
			{[]string{"apps", "-A"}, `cannot list resource "logapps" in API group "kubeplex.io" at the cluster scope`},
		} {
			_, errOut, err := runCLI(t, kc, append(tt.args, "-n", s.ns)...)
			if err == nil || !strings.Contains(errOut, "error: forbidden: User \"viewer-"+s.ns+"\" "+tt.want) {
				t.Errorf("kubeplex %v: err %v, stderr %q, want forbidden with %q", tt.args, err, errOut, tt.want)
			}
		}
	})
}
