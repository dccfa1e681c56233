// Package routes renders LogApps and LogDrains into the routing table the routers run.
// Render is a pure function of the objects it is given, so its output is golden-tested
// and two managers given the same objects write the same bytes.
package routes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
)

var (
	ingestTokenRE = regexp.MustCompile(`^t\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	drainTokenRE  = regexp.MustCompile(`^d\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	hmacKeyRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidIngestToken reports whether s has the form t.<uuid>.
func ValidIngestToken(s string) bool { return ingestTokenRE.MatchString(s) }

// ValidDrainToken reports whether s has the form d.<uuid>.
func ValidDrainToken(s string) bool { return drainTokenRE.MatchString(s) }

// ValidHMACKey reports whether s is a hex 256-bit key.
func ValidHMACKey(s string) bool { return hmacKeyRE.MatchString(s) }

// AcceptedDrain is what the LogDrain reconciler stores in the drain's Secret under
// kubeplexv1alpha1.DrainConfigSecretKey once the drain passed every check: the URL
// policy, its app and its credentials. Render reads only this, never the spec, so a
// spec edit cannot reach the routers before it has been checked.
type AcceptedDrain struct {
	// App is the name of the LogApp (same namespace) the drain was accepted for; empty
	// for a namespace-wide drain, which has Selector instead.
	App string `json:"app"`
	// Selector picks the apps of the namespace a namespace-wide drain covers.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// URL without userinfo.
	URL      string       `json:"url"`
	Username string       `json:"username,omitempty"`
	Password string       `json:"password,omitempty"`
	TLS      *routing.TLS `json:"tls,omitempty"`
	// Headers and Compression of an OTLP drain (routing.Drain).
	Headers     map[string]string `json:"headers,omitempty"`
	Compression string            `json:"compression,omitempty"`
	// Generation of the LogDrain that was accepted.
	Generation int64 `json:"generation"`
}

// Input is everything the table is made of. Secrets holds the manager's own Secrets
// (token and drain Secrets); others are ignored.
type Input struct {
	Apps    []kubeplexv1alpha1.LogApp
	Drains  []kubeplexv1alpha1.LogDrain
	Secrets []corev1.Secret
	// SessionKeys go into the table as they are (newest first).
	SessionKeys []routing.SessionKey
	// Platform are the manager's own credentials (the platform Secret's token).
	Platform []string
}

// Problem is an object Render left out, in whole or in part, and why. The reconcilers
// report problems in the object's own status and Events; the rest of the table is
// unaffected.
type Problem struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
}

// Problem reasons.
const (
	ReasonTokenSecretMissing = "TokenSecretMissing"
	ReasonTokenInvalid       = "TokenInvalid"
	ReasonHostConflict       = "HostConflict"
	ReasonDrainNotAccepted   = "DrainNotAccepted"
	ReasonDrainSecretInvalid = "DrainSecretInvalid"
	ReasonAppNotRouted       = "AppNotRouted"
)

// Result is Render's output: a sealed table and the problems met on the way.
type Result struct {
	Table    *routing.Table
	Problems []Problem
}

// Token sources: app tokens and collectors write "app"; the collector credential may
// also write the app's process events as "kubeplex" (routing.Token.Collector).
const (
	tokenSource         = "app"
	platformSource      = routing.PlatformSource
	defaultHistoryLines = routing.DefaultHistory
)

var (
	collectorTokenRE = regexp.MustCompile(`^c\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	addonTokenRE     = regexp.MustCompile(`^a\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	platformTokenRE  = regexp.MustCompile(`^p\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// ValidPlatformToken reports whether s has the form p.<uuid>.
func ValidPlatformToken(s string) bool { return platformTokenRE.MatchString(s) }

// Render builds the routing table. An app is routed when its token Secret holds a
// valid token; a drain when its Secret holds an accepted destination for an app that
// is routed. Anything else is left out and reported, never an error: one bad object
// must not stop the table for everyone else.
func Render(in Input) Result {
	secrets := make(map[types.NamespacedName]*corev1.Secret, len(in.Secrets))
	for i := range in.Secrets {
		s := &in.Secrets[i]
		secrets[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
	}
	var res Result
	problem := func(kind string, m metav1.Object, reason, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{
			Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName(),
			Reason: reason, Message: fmt.Sprintf(format, args...),
		})
	}

	// A canonical order, whatever order the cache lists them in. A host claimed by
	// two apps goes to neither (HostClaims): neither can take another's lines by
	// being first, and both owners see the conflict.
	apps := slices.Clone(in.Apps)
	slices.SortFunc(apps, func(a, b kubeplexv1alpha1.LogApp) int {
		return cmp.Or(
			a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name))
	})
	table := &routing.Table{Apps: []routing.App{}, SessionKeys: in.SessionKeys}
	index := map[string]int{} // app ID → position in table.Apps
	// Per namespace, the routed apps and their labels, for namespace-wide drains.
	byNamespace := map[string][]*kubeplexv1alpha1.LogApp{}
	claims := HostClaims(apps)
	for i := range apps {
		app := &apps[i]
		if !app.DeletionTimestamp.IsZero() {
			continue
		}
		id := ID(app.Namespace, app.Name)
		s := secrets[types.NamespacedName{Namespace: app.Namespace, Name: app.Name + kubeplexv1alpha1.TokenSecretSuffix}]
		if s == nil || !ownedBy(s, app.UID) {
			problem("LogApp", app, ReasonTokenSecretMissing, "token Secret %s%s not found or not owned by this LogApp",
				app.Name, kubeplexv1alpha1.TokenSecretSuffix)
			continue
		}
		tok := string(s.Data[kubeplexv1alpha1.TokenSecretKey])
		if !ValidIngestToken(tok) {
			problem("LogApp", app, ReasonTokenInvalid, "token Secret %s holds no valid token", s.Name)
			continue
		}
		ra := routing.App{
			ID:      id,
			History: int(app.Spec.HistorySize),
			Tokens:  []routing.Token{ingestToken(tok, nil)},
		}
		if app.Spec.CollectorMode == "" && ra.History == 0 {
			// An object that never went through the API server's defaulting (the
			// schema defaults historySize to 1500 and collectorMode to Exec).
			ra.History = defaultHistoryLines
		}
		if prev, why := previousToken(s); why != "" {
			problem("LogApp", app, ReasonTokenInvalid, "%s", why)
		} else if prev != nil {
			ra.Tokens = append(ra.Tokens, *prev)
		}
		// The collector credential: absent until the LogApp reconciler made it.
		csName := types.NamespacedName{Namespace: app.Namespace, Name: app.Name + kubeplexv1alpha1.CollectorSecretSuffix}
		if cs := secrets[csName]; cs != nil && ownedBy(cs, app.UID) {
			if tok := string(cs.Data[kubeplexv1alpha1.TokenSecretKey]); collectorTokenRE.MatchString(tok) {
				ra.Tokens = append(ra.Tokens, routing.Token{SHA256: routing.HashToken(tok), Source: tokenSource, Collector: true})
			}
		}
		ra.Tokens = append(ra.Tokens, addonTokens(app, secrets)...)
		for _, h := range app.Spec.Hosts {
			h = NormalizeHost(h)
			if owners := claims[h]; len(owners) > 1 {
				problem("LogApp", app, ReasonHostConflict, "host %s is also claimed by %s; its load-balancer lines go to neither until one gives it up",
					h, strings.Join(others(owners, id), ", "))
				continue
			}
			if !slices.Contains(ra.Hosts, h) {
				ra.Hosts = append(ra.Hosts, h)
			}
		}
		index[id] = len(table.Apps)
		table.Apps = append(table.Apps, ra)
		byNamespace[app.Namespace] = append(byNamespace[app.Namespace], app)
	}

	for i := range in.Drains {
		d := &in.Drains[i]
		if !d.DeletionTimestamp.IsZero() {
			continue
		}
		s := secrets[types.NamespacedName{Namespace: d.Namespace, Name: d.Name + kubeplexv1alpha1.DrainSecretSuffix}]
		if s == nil || !ownedBy(s, d.UID) {
			problem("LogDrain", d, ReasonDrainNotAccepted, "drain Secret not found yet")
			continue
		}
		acc, tok, key, reason, why := readDrainSecret(s)
		if reason != "" {
			problem("LogDrain", d, reason, "%s", why)
			continue
		}
		rd := routing.Drain{
			ID:          ID(d.Namespace, d.Name),
			Token:       tok,
			URL:         acc.URL,
			Username:    acc.Username,
			Password:    acc.Password,
			HMACKey:     key,
			TLS:         acc.TLS,
			Headers:     acc.Headers,
			Compression: acc.Compression,
		}
		if acc.Selector != nil {
			if !addInstances(table, index, byNamespace[d.Namespace], acc.Selector, rd) {
				problem("LogDrain", d, ReasonDrainSecretInvalid, "drain Secret holds an unusable app selector")
			}
			continue
		}
		pos, ok := index[ID(d.Namespace, acc.App)]
		if !ok {
			problem("LogDrain", d, ReasonAppNotRouted, "app %s is not in the routing table", acc.App)
			continue
		}
		table.Apps[pos].Drains = append(table.Apps[pos].Drains, rd)
	}
	for _, tok := range in.Platform {
		if ValidPlatformToken(tok) {
			table.Platform = append(table.Platform, routing.Token{SHA256: routing.HashToken(tok), Source: platformSource})
		}
	}
	table.Seal()
	slices.SortFunc(res.Problems, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name), strings.Compare(a.Reason, b.Reason), strings.Compare(a.Message, b.Message))
	})
	res.Table = table
	return res
}

// readDrainSecret reads what the LogDrain reconciler accepted, with the drain token
// and signing key, or why it cannot be used (a Problem reason and message).
func readDrainSecret(s *corev1.Secret) (acc AcceptedDrain, tok, key, reason, why string) {
	raw, ok := s.Data[kubeplexv1alpha1.DrainConfigSecretKey]
	if !ok {
		return acc, "", "", ReasonDrainNotAccepted, "no accepted destination"
	}
	if err := json.Unmarshal(raw, &acc); err != nil || acc.URL == "" || (acc.App == "") == (acc.Selector == nil) {
		return acc, "", "", ReasonDrainSecretInvalid, "drain Secret holds an unreadable accepted destination"
	}
	tok = string(s.Data[kubeplexv1alpha1.DrainTokenSecretKey])
	key = string(s.Data[kubeplexv1alpha1.DrainHMACKeySecretKey])
	if !ValidDrainToken(tok) || !ValidHMACKey(key) {
		return acc, "", "", ReasonDrainSecretInvalid, "drain Secret holds no valid drain token or signing key"
	}
	return acc, tok, key, "", ""
}

// addInstances puts one instance of namespace-wide drain rd under each of apps (the
// routed apps of its namespace) that the selector matches: each has its own queue
// in the router, so one app's burst cannot crowd another's lines out. It reports
// false for a selector that does not parse.
func addInstances(table *routing.Table, index map[string]int, apps []*kubeplexv1alpha1.LogApp,
	selector *metav1.LabelSelector, rd routing.Drain) bool {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return false
	}
	for _, app := range apps {
		if sel.Matches(labels.Set(app.Labels)) {
			inst := rd
			inst.ID, inst.Token = InstanceID(rd.ID, app.Name), InstanceToken(rd.Token, app.Name)
			pos := index[ID(app.Namespace, app.Name)]
			table.Apps[pos].Drains = append(table.Apps[pos].Drains, inst)
		}
	}
	return true
}

func ingestToken(tok string, notAfter *time.Time) routing.Token {
	return routing.Token{SHA256: routing.HashToken(tok), Source: tokenSource, NotAfter: notAfter}
}

// NormalizeHost is a host as the table holds it: lower case, no trailing dot.
func NormalizeHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

// HostClaims maps each host to the IDs of the live apps that list it, sorted.
func HostClaims(apps []kubeplexv1alpha1.LogApp) map[string][]string {
	claims := map[string][]string{}
	for i := range apps {
		a := &apps[i]
		if !a.DeletionTimestamp.IsZero() {
			continue
		}
		id := ID(a.Namespace, a.Name)
		for _, h := range a.Spec.Hosts {
			h = NormalizeHost(h)
			if !slices.Contains(claims[h], id) {
				claims[h] = append(claims[h], id)
			}
		}
	}
	for h := range claims {
		slices.Sort(claims[h])
	}
	return claims
}

func others(ids []string, self string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != self {
			out = append(out, id)
		}
	}
	return out
}

// ID is the routing-table ID of a namespaced object: "<namespace>/<name>".
func ID(namespace, name string) string { return namespace + "/" + name }

// InstanceID is the routing-table ID of a namespace-wide drain's instance for one
// app: "<namespace>/<drain>@<app>". '@' is in no Kubernetes name, so DrainID can
// take it apart again.
func InstanceID(drainID, app string) string { return drainID + "@" + app }

// DrainID is the LogDrain's ID ("<namespace>/<name>") of a routing-table drain ID,
// an instance's included.
func DrainID(id string) string {
	if i := strings.IndexByte(id, '@'); i >= 0 {
		return id[:i]
	}
	return id
}

// InstanceToken is what a namespace-wide drain's receiver sees as the drain token
// of one app's lines (HOSTNAME, Logplex-Drain-Token): the drain's one token, then
// "/<app>", so that the token still leads and the app can be told apart.
func InstanceToken(tok, app string) string { return tok + "/" + app }

func ownedBy(s *corev1.Secret, uid types.UID) bool {
	for _, ref := range s.OwnerReferences {
		if ref.UID == uid && ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

// previousToken is the rotated-out ingest token a token Secret still holds, valid
// until the end of its grace period: nil when there is none, and why it is left out
// when it is there but unusable.
func previousToken(s *corev1.Secret) (tok *routing.Token, why string) {
	prev := string(s.Data[kubeplexv1alpha1.PreviousTokenSecretKey])
	if prev == "" {
		return nil, ""
	}
	notAfter, err := time.Parse(time.RFC3339, s.Annotations[kubeplexv1alpha1.PreviousTokenNotAfterAnnotation])
	switch {
	case !ValidIngestToken(prev):
		return nil, fmt.Sprintf("token Secret %s holds an invalid previous token; left out", s.Name)
	case err != nil:
		return nil, fmt.Sprintf("token Secret %s: previous token has no valid %s; left out",
			s.Name, kubeplexv1alpha1.PreviousTokenNotAfterAnnotation)
	}
	notAfter = notAfter.UTC()
	t := ingestToken(prev, &notAfter)
	return &t, ""
}

// addonTokens are the app's add-on input tokens: each writes its add-on's name as
// source, nothing else (docs/addons.md).
func addonTokens(app *kubeplexv1alpha1.LogApp, secrets map[types.NamespacedName]*corev1.Secret) []routing.Token {
	var out []routing.Token
	for _, ad := range app.Spec.Addons {
		if ad.Name == tokenSource || ad.Name == platformSource || ad.Name == "" {
			continue // the API refuses these names; a table never grants them
		}
		as := secrets[types.NamespacedName{Namespace: app.Namespace, Name: app.Name + kubeplexv1alpha1.AddonSecretInfix + ad.Name}]
		if as == nil || !ownedBy(as, app.UID) {
			continue // not issued yet: the LogApp reconciler makes it
		}
		if tok := string(as.Data[kubeplexv1alpha1.TokenSecretKey]); addonTokenRE.MatchString(tok) {
			out = append(out, routing.Token{SHA256: routing.HashToken(tok), Source: ad.Name})
		}
	}
	return out
}
