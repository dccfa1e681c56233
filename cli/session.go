package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// LogSessionGVK is the LogSession API (docs/sessions.md). The CLI reads and writes it
// as unstructured so it depends only on the fields of the contract.
var LogSessionGVK = schema.GroupVersionKind{Group: "kubeplex.io", Version: "v1alpha1", Kind: "LogSession"}

// MaxLines is the most history one session returns (Logplex's 1500).
const MaxLines = 1500

// SessionRequest is what one LogSession asks for; the names follow Heroku's
// `POST /apps/{app}/log-sessions`.
type SessionRequest struct {
	Namespace string
	App       string
	Lines     int
	Tail      bool
	Source    string
	Dyno      string
}

// Session is an issued session: where to read it and until when it must be opened.
type Session struct {
	Name      string
	URL       string
	ExpiresAt time.Time
}

// ErrAppNotFound says the session's app does not exist in its namespace.
var ErrAppNotFound = errors.New("app not found")

// sessionAnswerTimeout bounds the wait for the manager to answer a LogSession. It is
// a failure guard (the manager is down or not installed), not a latency goal.
const sessionAnswerTimeout = 30 * time.Second

// CreateSession creates a LogSession and waits until the manager sets status.url or
// refuses it (Ready False). What RBAC refuses comes back as a forbidden error naming
// the verb and resource.
func CreateSession(ctx context.Context, c client.Client, r SessionRequest) (*Session, error) {
	if err := checkApp(ctx, c, r.Namespace, r.App); err != nil {
		return nil, err
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(LogSessionGVK)
	obj.SetNamespace(r.Namespace)
	obj.SetGenerateName(generateName(r.App))
	spec := map[string]any{
		"appRef": map[string]any{"name": r.App},
		"lines":  int64(r.Lines),
		"tail":   r.Tail,
	}
	if r.Source != "" {
		spec["source"] = r.Source
	}
	if r.Dyno != "" {
		spec["dyno"] = r.Dyno
	}
	obj.Object["spec"] = spec
	if err := c.Create(ctx, obj); err != nil {
		return nil, explain(err)
	}
	return waitSession(ctx, c, obj.GetNamespace(), obj.GetName(), r.App)
}

// checkApp fails early and clearly when the app does not exist. A user who may open
// sessions but not read LogApps gets the manager's answer instead.
func checkApp(ctx context.Context, c client.Client, ns, app string) error {
	var a kubeplexv1alpha1.LogApp
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: app}, &a)
	switch {
	case err == nil, apierrors.IsForbidden(err):
		return nil
	case apierrors.IsNotFound(err) && !isMissingResource(err):
		return fmt.Errorf("%w: no LogApp %q in namespace %q", ErrAppNotFound, app, ns)
	}
	return explain(err)
}

func generateName(app string) string {
	if len(app) > 200 {
		app = app[:200]
	}
	return strings.TrimSuffix(app, ".") + "-"
}

// waitSession polls the LogSession until it has a URL or is refused.
func waitSession(ctx context.Context, c client.Client, ns, name, app string) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, sessionAnswerTimeout)
	defer cancel()
	delay := 20 * time.Millisecond
	for {
		obj := &unstructured.Unstructured{}
		obj.SetGroupVersionKind(LogSessionGVK)
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			if ctx.Err() == nil {
				return nil, explain(err)
			}
		} else {
			s, err := sessionFromStatus(obj, app)
			if s != nil || err != nil {
				return s, err
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("LogSession %s/%s got no answer within %v: is the kubeplex manager running?", ns, name, sessionAnswerTimeout)
			}
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// sessionFromStatus reads an answered session, a refusal, or (nil, nil) for "not yet".
func sessionFromStatus(obj *unstructured.Unstructured, app string) (*Session, error) {
	u, _, _ := unstructured.NestedString(obj.Object, "status", "url")
	if u != "" {
		s := &Session{Name: obj.GetName(), URL: u}
		if exp, _, _ := unstructured.NestedString(obj.Object, "status", "expiresAt"); exp != "" {
			s.ExpiresAt, _ = time.Parse(time.RFC3339, exp) // display only
		}
		return s, nil
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, raw := range conds {
		cond, ok := raw.(map[string]any)
		if !ok || cond["type"] != kubeplexv1alpha1.ReadyCondition || cond["status"] != "False" {
			continue
		}
		reason, _ := cond["reason"].(string)
		msg, _ := cond["message"].(string)
		if reason == kubeplexv1alpha1.AppNotFoundReason {
			return nil, fmt.Errorf("%w: no LogApp %q in namespace %q", ErrAppNotFound, app, obj.GetNamespace())
		}
		switch reason {
		case "", "Pending", "SigningKeyUnavailable": // the manager is still getting ready
			continue
		case "SessionsDisabled":
			return nil, errors.New("log sessions are turned off in this cluster: the kubeplex manager runs without --session-base-url")
		}
		return nil, fmt.Errorf("session refused (%s): %s", reason, msg)
	}
	return nil, nil
}

// WithRouterBase replaces the scheme and host of a session URL (and any path before
// /sessions/) with base, e.g. a port-forward to the router Service.
func WithRouterBase(sessionURL, base string) (string, error) {
	if base == "" {
		return sessionURL, nil
	}
	s, err := url.Parse(sessionURL)
	if err != nil {
		return "", fmt.Errorf("parse session URL: %w", err)
	}
	i := strings.Index(s.EscapedPath(), "/sessions/")
	if i < 0 {
		return "", errors.New("the session URL has no /sessions/ path")
	}
	b, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || b.Scheme == "" || b.Host == "" {
		return "", fmt.Errorf("--router-url %q is not an absolute URL such as http://127.0.0.1:8080", base)
	}
	return b.String() + s.EscapedPath()[i:], nil
}
