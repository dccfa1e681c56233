// Package routes renders LogApps and LogDrains into the routing table the routers run.
// Render is a pure function of the objects it is given, so its output is golden-tested
// and two managers given the same objects write the same bytes.
package routes

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
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
func Render(in Input) Result { return (*Renderer)(nil).Render(in) }

// Renderer renders as Render does and remembers, between renders, what it read out
// of each Secret (by UID and resourceVersion: an object the API server stored is
// never changed without a new resourceVersion) and each app's encoding (Encoder).
// The manager renders the whole table on every change; at 50,000 drains decoding
// every drain Secret's accepted destination, checking and hashing every token, and
// building a fresh index of 100,000 Secrets cost most of a render
// (docs/scaling.md). A nil *Renderer remembers nothing. Not safe for concurrent use.
type Renderer struct {
	// Encoder seals the table; the routes Store splits with the same one.
	Encoder *routing.Encoder

	gen     uint64
	secrets map[types.NamespacedName]*secretEntry
}

// secretEntry is one Secret of the current render and what was read from its
// version, read when first needed.
type secretEntry struct {
	s       *corev1.Secret
	uid     types.UID
	rv      string
	gen     uint64
	drain   *drainSecret
	token   *tokenSecret
	ownerID string // routing-table ID of the app or drain the Secret is named for
}

// index points the Renderer's entries at in's Secrets, keeping what was read from
// a Secret whose UID and resourceVersion are the same, and returns the lookup.
func (r *Renderer) index(in []corev1.Secret) func(namespace, name string) *secretEntry {
	r.gen++
	if r.secrets == nil {
		r.secrets = make(map[types.NamespacedName]*secretEntry, len(in))
	}
	gen := r.gen
	for i := range in {
		s := &in[i]
		key := types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
		e := r.secrets[key]
		// Objects without a UID or resourceVersion (made in a test, never stored)
		// are read again every time.
		if e == nil || e.uid != s.UID || e.rv != s.ResourceVersion || s.UID == "" || s.ResourceVersion == "" {
			e = &secretEntry{uid: s.UID, rv: s.ResourceVersion}
			r.secrets[key] = e
		}
		e.s, e.gen = s, gen
	}
	if len(r.secrets) > len(in) { // some are gone (or in listed one twice)
		maps.DeleteFunc(r.secrets, func(_ types.NamespacedName, e *secretEntry) bool { return e.gen != gen })
	}
	secrets := r.secrets
	return func(namespace, name string) *secretEntry {
		if e := secrets[types.NamespacedName{Namespace: namespace, Name: name}]; e != nil && e.gen == gen {
			return e
		}
		return nil
	}
}

func (e *secretEntry) drainSecret() *drainSecret {
	if e.drain == nil {
		var ds drainSecret
		ds.acc, ds.tok, ds.key, ds.reason, ds.why = readDrainSecret(e.s)
		e.drain = &ds
	}
	return e.drain
}

func (e *secretEntry) tokenSecret() *tokenSecret {
	if e.token == nil {
		ts := readTokenSecret(e.s)
		e.token = &ts
	}
	return e.token
}

// id is ID(namespace, name) of the object the Secret belongs to, made once.
func (e *secretEntry) id(namespace, name string) string {
	if e.ownerID == "" {
		e.ownerID = ID(namespace, name)
	}
	return e.ownerID
}

// drainSecret is what a drain Secret holds (readDrainSecret).
type drainSecret struct {
	acc                   AcceptedDrain
	tok, key, reason, why string
}

// tokenSecret is what a token, collector or add-on Secret holds: its token's
// digest and form, and a token Secret's previous token.
type tokenSecret struct {
	// form is 't', 'c' or 'a' when the token is an ingest, collector or add-on
	// token of the right form, else 0.
	form    byte
	digest  string
	prev    *routing.Token
	prevWhy string
}

func readTokenSecret(s *corev1.Secret) tokenSecret {
	tok := string(s.Data[kubeplexv1alpha1.TokenSecretKey])
	ts := tokenSecret{digest: routing.HashToken(tok)}
	switch {
	case ValidIngestToken(tok):
		ts.form = 't'
	case collectorTokenRE.MatchString(tok):
		ts.form = 'c'
	case addonTokenRE.MatchString(tok):
		ts.form = 'a'
	}
	ts.prev, ts.prevWhy = previousToken(s) // used for the app's token Secret only
	return ts
}

// Render builds the routing table as the package's Render does.
func (r *Renderer) Render(in Input) Result {
	if r == nil {
		r = &Renderer{}
	}
	enc, secret := r.Encoder, r.index(in.Secrets)
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
	// Pointers are sorted, not the objects: each LogApp is hundreds of bytes, and
	// moving them cost more than the rest of the apps' part of a render.
	apps := make([]*kubeplexv1alpha1.LogApp, len(in.Apps))
	for i := range in.Apps {
		apps[i] = &in.Apps[i]
	}
	slices.SortFunc(apps, func(a, b *kubeplexv1alpha1.LogApp) int {
		return cmp.Or(
			a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
			strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name))
	})
	table := &routing.Table{Apps: []routing.App{}, SessionKeys: in.SessionKeys}
	index := map[string]int{} // app ID → position in table.Apps
	// Per namespace, the routed apps and their labels, for namespace-wide drains.
	byNamespace := map[string][]*kubeplexv1alpha1.LogApp{}
	claims := HostClaims(in.Apps)
	for _, app := range apps {
		if !app.DeletionTimestamp.IsZero() {
			continue
		}
		se := secret(app.Namespace, app.Name+kubeplexv1alpha1.TokenSecretSuffix)
		if se == nil || !ownedBy(se.s, app.UID) {
			problem("LogApp", app, ReasonTokenSecretMissing, "token Secret %s%s not found or not owned by this LogApp",
				app.Name, kubeplexv1alpha1.TokenSecretSuffix)
			continue
		}
		ts, id := se.tokenSecret(), se.id(app.Namespace, app.Name)
		if ts.form != 't' {
			problem("LogApp", app, ReasonTokenInvalid, "token Secret %s holds no valid token", se.s.Name)
			continue
		}
		ra := routing.App{
			ID:      id,
			History: int(app.Spec.HistorySize),
			Tokens:  []routing.Token{{SHA256: ts.digest, Source: tokenSource}},
		}
		if app.Spec.CollectorMode == "" && ra.History == 0 {
			// An object that never went through the API server's defaulting (the
			// schema defaults historySize to 1500 and collectorMode to Exec).
			ra.History = defaultHistoryLines
		}
		if ts.prevWhy != "" {
			problem("LogApp", app, ReasonTokenInvalid, "%s", ts.prevWhy)
		} else if ts.prev != nil {
			prev := *ts.prev
			prev.NotAfter = new(*ts.prev.NotAfter) // the table's own: a caller may change it
			ra.Tokens = append(ra.Tokens, prev)
		}
		// The collector credential: absent until the LogApp reconciler made it.
		if cs := secret(app.Namespace, app.Name+kubeplexv1alpha1.CollectorSecretSuffix); cs != nil && ownedBy(cs.s, app.UID) {
			if ts := cs.tokenSecret(); ts.form == 'c' {
				ra.Tokens = append(ra.Tokens, routing.Token{SHA256: ts.digest, Source: tokenSource, Collector: true})
			}
		}
		ra.Tokens = append(ra.Tokens, addonTokens(app, secret)...)
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
		se := secret(d.Namespace, d.Name+kubeplexv1alpha1.DrainSecretSuffix)
		if se == nil || !ownedBy(se.s, d.UID) {
			problem("LogDrain", d, ReasonDrainNotAccepted, "drain Secret not found yet")
			continue
		}
		ds := se.drainSecret()
		acc, tok, key := &ds.acc, ds.tok, ds.key
		if ds.reason != "" {
			problem("LogDrain", d, ds.reason, "%s", ds.why)
			continue
		}
		rd := routing.Drain{
			ID:       se.id(d.Namespace, d.Name),
			Token:    tok,
			URL:      acc.URL,
			Username: acc.Username,
			Password: acc.Password,
			HMACKey:  key,
			// Copies: the rest of the drain is strings, and the Renderer keeps
			// acc for the next render, whatever a caller does with this table.
			TLS:         cloneTLS(acc.TLS),
			Headers:     maps.Clone(acc.Headers),
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
	enc.Seal(table)
	slices.SortFunc(res.Problems, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace),
			strings.Compare(a.Name, b.Name), strings.Compare(a.Reason, b.Reason), strings.Compare(a.Message, b.Message))
	})
	res.Table = table
	return res
}

func cloneTLS(t *routing.TLS) *routing.TLS {
	if t == nil {
		return nil
	}
	c := *t
	return &c
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
func addonTokens(app *kubeplexv1alpha1.LogApp, secret func(namespace, name string) *secretEntry) []routing.Token {
	var out []routing.Token
	for _, ad := range app.Spec.Addons {
		if ad.Name == tokenSource || ad.Name == platformSource || ad.Name == "" {
			continue // the API refuses these names; a table never grants them
		}
		as := secret(app.Namespace, app.Name+kubeplexv1alpha1.AddonSecretInfix+ad.Name)
		if as == nil || !ownedBy(as.s, app.UID) {
			continue // not issued yet: the LogApp reconciler makes it
		}
		if ts := as.tokenSecret(); ts.form == 'a' {
			out = append(out, routing.Token{SHA256: ts.digest, Source: ad.Name})
		}
	}
	return out
}
