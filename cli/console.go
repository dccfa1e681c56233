package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

//go:embed console.html
var consoleFiles embed.FS

// Console is the local web page of `kubeplex console`: apps and drains of the
// user's cluster, read and changed with the user's own credentials, like
// `kubectl proxy`. It listens on loopback only, answers only requests addressed to
// that loopback name (so a DNS-rebinding page cannot reach it), and changes nothing
// without the per-run token that only its own page holds (so another site's page
// cannot make the browser change drains).
type Console struct {
	Client    client.Client
	Namespace string
	// RouterURL replaces the base of session URLs (a port-forward), as in `logs`.
	RouterURL string
	Log       *slog.Logger

	token string
	hosts map[string]bool
	page  []byte
	csp   string
}

// NewConsole prepares a console that will be served on port (needed for the Host
// check).
func NewConsole(c client.Client, namespace, routerURL string, port int, log *slog.Logger) (*Console, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("make console token: %w", err)
	}
	raw, err := consoleFiles.ReadFile("console.html")
	if err != nil {
		return nil, fmt.Errorf("read console page: %w", err)
	}
	// Plain substitution into two meta tags, not html/template: the inline script
	// must be served byte for byte as hashed into the policy.
	tok := hex.EncodeToString(b[:])
	page := strings.NewReplacer("{{.Token}}", tok, "{{.Namespace}}", html.EscapeString(namespace)).Replace(string(raw))
	p := strconv.Itoa(port)
	return &Console{
		Client: c, Namespace: namespace, RouterURL: routerURL, Log: log,
		token: tok,
		hosts: map[string]bool{"127.0.0.1:" + p: true, "localhost:" + p: true},
		page:  []byte(page),
		csp:   inlinePolicy(raw),
	}, nil
}

// inlinePolicy allows the page's own inline script and style by hash, and nothing
// else from anywhere.
func inlinePolicy(page []byte) string {
	h := func(tag string) string {
		var out strings.Builder
		for _, m := range regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllSubmatch(page, -1) {
			sum := sha256.Sum256(m[1])
			out.WriteString(" 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'")
		}
		return out.String()
	}
	return "default-src 'none'; script-src" + h("script") + "; style-src" + h("style") +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// Handler serves the page and its JSON API.
func (c *Console) Handler() http.Handler {
	mx := http.NewServeMux()
	mx.HandleFunc("GET /{$}", c.index)
	mx.HandleFunc("GET /api/apps", c.apps)
	mx.HandleFunc("GET /api/drains", c.drains)
	mx.HandleFunc("POST /api/drains", c.addDrain)
	mx.HandleFunc("POST /api/drains/remove", c.removeDrain)
	mx.HandleFunc("POST /api/sessions", c.view)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if !c.hosts[r.Host] {
			http.Error(w, "this console answers only at its own loopback address", http.StatusMisdirectedRequest)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !c.sameOrigin(r) {
			http.Error(w, "missing or wrong console token", http.StatusForbidden)
			return
		}
		mx.ServeHTTP(w, r)
	})
}

// sameOrigin checks a state-changing request: its Origin (when the browser sends
// one) is this console, and it carries the page's token.
func (c *Console) sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && !c.hosts[strings.TrimPrefix(o, "http://")] {
		return false
	}
	// A custom header: a cross-site form cannot send it, and a cross-site fetch with
	// it needs a CORS preflight this server never grants.
	tok := r.Header.Get("X-Kubeplex-Token")
	return subtle.ConstantTimeCompare([]byte(tok), []byte(c.token)) == 1
}

func (c *Console) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", c.csp)
	w.Header().Set("X-Frame-Options", "DENY")
	_, _ = w.Write(c.page) // a browser that went away needs no page
}

func (c *Console) ns(r *http.Request) string {
	if r.URL.Query().Has("namespace") {
		return r.URL.Query().Get("namespace") // empty: all namespaces
	}
	return c.Namespace
}

func (c *Console) apps(w http.ResponseWriter, r *http.Request) {
	apps, err := ListApps(r.Context(), c.Client, c.ns(r))
	c.reply(w, apps, err)
}

// ConsoleDrain is a drain as the console shows it: never the URL's credentials.
type ConsoleDrain struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	App        string `json:"app"`
	URL        string `json:"url"`
	Ready      string `json:"ready"`
	Delivering string `json:"delivering"`
	Delivered  int64  `json:"delivered"`
	Dropped    int64  `json:"dropped"`
	LastError  string `json:"lastError"`
}

func (c *Console) drains(w http.ResponseWriter, r *http.Request) {
	ds, err := ListDrains(r.Context(), c.Client, c.ns(r), r.URL.Query().Get("app"))
	out := make([]ConsoleDrain, 0, len(ds))
	for i := range ds {
		d := &ds[i]
		out = append(out, ConsoleDrain{Namespace: d.Namespace, Name: d.Name, App: DrainAppCell(d),
			URL:        RedactURL(d.Spec.URL),
			Ready:      ConditionStatus(d.Status.Conditions, kubeplexv1alpha1.ReadyCondition),
			Delivering: ConditionStatus(d.Status.Conditions, kubeplexv1alpha1.DeliveringCondition),
			Delivered:  d.Status.Delivered, Dropped: d.Status.Dropped, LastError: DrainProblem(d)})
	}
	c.reply(w, out, err)
}

func (c *Console) addDrain(w http.ResponseWriter, r *http.Request) {
	var o DrainOptions
	if err := decodeJSON(r, &o); err != nil {
		c.reply(w, nil, err)
		return
	}
	if o.Namespace == "" {
		o.Namespace = c.Namespace
	}
	if o.App == "" || o.URL == "" {
		c.reply(w, nil, errors.New("an app and a URL are required"))
		return
	}
	d, err := AddDrain(r.Context(), c.Client, o)
	if err != nil {
		c.reply(w, nil, err)
		return
	}
	c.reply(w, map[string]string{"namespace": d.Namespace, "name": d.Name}, nil)
}

func (c *Console) removeDrain(w http.ResponseWriter, r *http.Request) {
	var o struct{ Namespace, Name string }
	if err := decodeJSON(r, &o); err != nil {
		c.reply(w, nil, err)
		return
	}
	if o.Namespace == "" {
		o.Namespace = c.Namespace
	}
	c.reply(w, map[string]string{"removed": o.Name}, RemoveDrain(r.Context(), c.Client, o.Namespace, o.Name))
}

// view creates a tail session for an app (with the user's credentials, so RBAC
// decides) and answers its viewer URL, which the page opens.
func (c *Console) view(w http.ResponseWriter, r *http.Request) {
	var o struct {
		Namespace, App, Source, Dyno string
		Lines                        *int
	}
	if err := decodeJSON(r, &o); err != nil {
		c.reply(w, nil, err)
		return
	}
	if o.Namespace == "" {
		o.Namespace = c.Namespace
	}
	lines := MaxLines
	if o.Lines != nil && *o.Lines >= 0 && *o.Lines <= MaxLines {
		lines = *o.Lines
	}
	s, err := CreateSession(r.Context(), c.Client, SessionRequest{Namespace: o.Namespace, App: o.App, Lines: lines,
		Tail: true, Source: o.Source, Dyno: o.Dyno})
	if err == nil {
		s.URL, err = WithRouterBase(s.URL, c.RouterURL)
	}
	if err != nil {
		c.reply(w, nil, err)
		return
	}
	c.reply(w, map[string]string{"url": s.URL}, nil)
}

func decodeJSON(r *http.Request, v any) error {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return errBadRequest("send application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest("bad request body: " + err.Error())
	}
	return nil
}

type errBadRequest string

func (e errBadRequest) Error() string { return string(e) }

// statusOf maps the CLI's errors to HTTP statuses for the page.
func statusOf(err error) int {
	var br errBadRequest
	switch {
	case errors.As(err, &br):
		return http.StatusBadRequest
	case errors.Is(err, ErrAppNotFound), strings.HasPrefix(err.Error(), "no drain "):
		return http.StatusNotFound
	case strings.HasPrefix(err.Error(), "forbidden:"):
		return http.StatusForbidden
	case strings.HasPrefix(err.Error(), "invalid "), strings.HasPrefix(err.Error(), "a drain named"):
		return http.StatusUnprocessableEntity
	}
	return http.StatusBadGateway
}

func (c *Console) reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(statusOf(err))
		v = map[string]string{"error": oneLine(err.Error())}
	}
	if err := json.NewEncoder(w).Encode(v); err != nil {
		c.Log.Debug("write console reply", "err", err)
	}
}

type consoleOptions struct {
	*globals
	port      int
	routerURL string
}

func newConsoleCommand(g *globals) *cobra.Command {
	o := &consoleOptions{globals: g}
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve a local web page for apps and drains (on 127.0.0.1, with your kubeconfig)",
		Long: `Serve a web page on 127.0.0.1 that lists apps and drains with their health and
counters, adds and removes drains, and opens an app's live log viewer. It acts with
your kubeconfig's credentials, like kubectl proxy, and answers only on the loopback
address it prints; nothing is opened for you. Stop it with Ctrl-C.`,
		Example: `  kubeplex console -n shop
  kubeplex console --port 8001 --router-url http://127.0.0.1:8080   # router port-forwarded`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	cmd.Flags().IntVar(&o.port, "port", 0, "port on 127.0.0.1 (default: a free one)")
	cmd.Flags().StringVar(&o.routerURL, "router-url", "", "reach the router here instead of the session URL's host (e.g. a port-forward)")
	return cmd
}

func (o *consoleOptions) run(ctx context.Context) error {
	c, ns, err := o.client()
	if err != nil {
		return err
	}
	if o.port < 0 || o.port > 65535 {
		return fmt.Errorf("--port %d is not a port", o.port)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w", o.port, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	log := slog.New(slog.NewTextHandler(o.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	con, err := NewConsole(c, ns, o.routerURL, port, log)
	if err != nil {
		_ = ln.Close() // nothing was served
		return err
	}
	srv := &http.Server{Handler: con.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if err := say(o.out, "kubeplex console: http://127.0.0.1:%d/ (namespace %s; Ctrl-C to stop)\n", port, ns); err != nil {
		_ = ln.Close() // nobody learns the URL: serve nothing
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve console: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx) // open viewers' redirects are done; long polls may be cut
	return nil
}
