// Package dispatch holds the live routing state: which token or host leads to which
// app, each app's history, and each drain's queue and runner. A new routing table is
// applied by diffing: apps keep their history, unchanged drains keep their queues and
// connections, and the lookup maps are swapped atomically under ingest.
package dispatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	httpdrain "github.com/kubeplex/kubeplex/router/drain/http"
	"github.com/kubeplex/kubeplex/router/drain/otlp"
	"github.com/kubeplex/kubeplex/router/drain/syslog"
	"github.com/kubeplex/kubeplex/router/history"
	"github.com/kubeplex/kubeplex/router/message"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// Options configure a Dispatcher.
type Options struct {
	// QueueSize is each drain's buffer in messages (default 1024).
	QueueSize int
	Dialer    *drain.Dialer
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	UserAgent string
	// Syslog, HTTP and OTLP tune the drain types.
	Syslog syslog.Options
	HTTP   httpdrain.Options
	OTLP   otlp.Options
	// RemoveGrace bounds the flush of a drain removed from the table, and the
	// requests in flight an HTTP or OTLP drain that moved to another owner finishes
	// (Reown) [5 s].
	RemoveGrace time.Duration
	// Router names this replica in status reports.
	Router string
	// Owners, when set (router --drain-owners), decides which drains this replica
	// delivers itself; the others get a runner whose drain forwards their batches
	// to an owner. Nil: every drain is delivered here.
	Owners Owners
}

// Owners decides which drains a replica delivers (see Options.Owners).
type Owners interface {
	// Owns reports whether this replica delivers drain id itself.
	Owns(id string) bool
	// Forwarder returns the drain that hands the batches of cfg to its owners;
	// origins: the owners' drain uses the lines' origins (drain.OriginUser), so the
	// forwarder carries them.
	Forwarder(cfg *drain.Config, env drain.Env, origins bool) drain.Drain
}

// Dispatcher routes messages to apps. Lookups are lock-free; Apply is serialized.
type Dispatcher struct {
	opts    Options
	started time.Time
	snap    atomic.Pointer[snapshot]

	mu   sync.Mutex // serializes Apply and Shutdown
	apps map[string]*App
	// broken holds drains the table names but the router cannot build (bad URL).
	broken map[string]routing.DrainStatus
	// retired keeps the counters of drains taken out of the table, by drain ID: a
	// drain removed and added again (an app's drains re-rendered, a LogDrain deleted
	// and recreated) continues its counts, which /status and the metrics promise are
	// cumulative. Bounded by maxRetired.
	retired map[string]*drain.Stats
	closed  bool
	// gen numbers the applies (App.seen, App.dirty).
	gen uint64
	// order holds the apps in the order of the table in use: the next table
	// usually has them in the same order, and finding them there costs less than
	// a lookup by ID for each.
	order []*App
	// drainApps maps every drain ID of the table in use to its app: Apply checks a
	// changed app's drains against it, and with Options.Owners the snapshot gets a
	// copy.
	drainApps map[string]*App
	// tangled: a token or host of the table in use is claimed by two apps, so the
	// lookup maps are built afresh (see patchLookups).
	tangled bool
	// removing counts the flushes of drains removed from the table, which run in
	// the background so Apply does not wait for a slow destination.
	removing sync.WaitGroup
}

// maxRetired bounds the counters kept for removed drains.
const maxRetired = 4096

type snapshot struct {
	version  string
	tokens   map[[sha256.Size]byte]*Route
	platform map[[sha256.Size]byte]bool
	hosts    map[string]*App
	apps     map[string]*App
	// drainApps finds a drain's app by drain ID (only with Options.Owners: lines
	// forwarded by other replicas name their drain).
	drainApps map[string]*App
}

// Route is what an ingest token grants: the app, and the sources it may write as.
type Route struct {
	App       *App
	Source    []byte
	allowed   [][]byte
	collector bool
	notAfter  time.Time
}

var platformSource = []byte(routing.PlatformSource)

// SourceFor returns the source a message is filed under: the APP-NAME the producer
// wrote when the token allows it, otherwise the token's own source. Source kubeplex
// is allowed only to a collector credential and only for the app's own processes
// (process events), never for a platform process (kubeplex[router], [api], ...), so
// no producer can write what the platform says.
func (r *Route) SourceFor(appName, procID []byte) []byte {
	if len(appName) == 0 || string(appName) == string(r.Source) {
		return r.Source
	}
	if string(appName) == routing.PlatformSource {
		if r.collector && !routing.IsPlatformProcess(procID) {
			return platformSource
		}
		return r.Source
	}
	for _, a := range r.allowed {
		if string(a) == string(appName) {
			return a
		}
	}
	return r.Source
}

// Collector reports whether the token is one of the app's collector credentials.
func (r *Route) Collector() bool { return r.collector }

// App is one app's live state.
type App struct {
	ID      string
	History *history.History
	// runners is the current drain set; replaced, never mutated, under Dispatcher.mu.
	runners atomic.Pointer[[]*drain.Runner]
	// In counts messages published into the app.
	In atomic.Int64
	// admit orders PublishWhenRoom's waiters.
	admit sync.Mutex
	// origins: a drain of the app uses the records' origins (drain.OriginUser), so
	// PublishFrom carries them into the drain records; set with runners.
	origins atomic.Bool

	// Apply's view of the app, under Dispatcher.mu: a copy of the table entry last
	// applied, whether one of its drains could not be built then, and the applies
	// (Dispatcher.gen) that last found it in a table and found it changed.
	spec        routing.App
	broken      bool
	seen, dirty uint64
	pos         int // index in Dispatcher.order
}

// Publish appends records (message encodings) to the app's history and offers them
// to every drain queue. It never blocks on a drain.
func (a *App) Publish(recs [][]byte) { a.PublishFrom(recs, nil) }

// PublishFrom is Publish for records that came from one place: origin
// (message.AppendOrigin: the sending collector's pod and node) goes with each record
// to the app's drains when one of them uses it (OTLP), and is not kept in history.
func (a *App) PublishFrom(recs [][]byte, origin []byte) {
	if len(recs) == 0 {
		return
	}
	if !a.origins.Load() {
		origin = nil
	}
	a.History.Append(recs...)
	if rs := a.runners.Load(); rs != nil && len(*rs) > 0 {
		// Encode for drains once; every drain copies the same bytes with its token.
		w, _ := wirePool.Get().(*wireBatch)
		if w == nil {
			w = &wireBatch{}
		}
		w.encode(recs, origin)
		busy := false
		for _, r := range *rs {
			busy = r.Offer(w.recs) || busy
		}
		wirePool.Put(w)
		if busy {
			// A filling queue usually means its runner is short of CPU rather than of
			// network: let it run before this producer reads more. This yields, never
			// waits, so a dead drain (whose queue stays full) costs ingest a scheduler
			// pass per batch, not throughput.
			runtime.Gosched()
		}
	}
	a.In.Add(int64(len(recs)))
}

type wireBatch struct {
	enc  message.WireEncoder
	buf  []byte
	ends []int
	recs [][]byte
}

var wirePool sync.Pool

func (w *wireBatch) encode(recs [][]byte, origin []byte) {
	w.buf, w.ends, w.recs = w.buf[:0], w.ends[:0], w.recs[:0]
	for _, rec := range recs {
		m, err := message.Decode(rec)
		if err != nil {
			continue // written by this process: cannot happen
		}
		w.buf = w.enc.Append(w.buf, &m, origin)
		w.ends = append(w.ends, len(w.buf))
	}
	start := 0
	for _, end := range w.ends {
		w.recs = append(w.recs, w.buf[start:end])
		start = end
	}
}

// PublishWhenRoom is Publish for a sender that waits for its answer (POST /logs):
// first it waits, for at most limit, while no drain of the app that is delivering
// has room for recs in its queue and at least one of them is backlogged
// (drain.Runner.Backlogged), so that a burst a lone drain (or all of them) cannot
// take at once slows the sender rather than being dropped at the queue. As soon as
// one delivering drain has room, the batch goes: a slow drain beside a healthy one
// drops its oldest lines (L10) and never holds the sender, the healthy drain or the
// app's history, as in Logplex. Such publishes of one app go one at a time, so that
// waiters do not all fill the same room. It waits for no drain that is failing, and
// with limit 0 it is Publish. It returns how long it waited.
// origin is as for PublishFrom.
func (a *App) PublishWhenRoom(ctx context.Context, recs [][]byte, origin []byte, limit time.Duration) (held time.Duration) {
	if limit > 0 && len(recs) > 0 {
		a.admit.Lock()
		defer a.admit.Unlock()
		held = a.waitRoom(ctx, len(recs), limit)
	}
	a.PublishFrom(recs, origin)
	return held
}

// waitRoom waits while the app is held (see held), for at most limit.
func (a *App) waitRoom(ctx context.Context, n int, limit time.Duration) time.Duration {
	var start time.Time
	for a.held(n) {
		now := time.Now()
		if start.IsZero() {
			start = now
		} else if now.Sub(start) > limit {
			break
		}
		// Polled: a drain empties its queue in batches, so a millisecond (the
		// timer's resolution) is a fraction of one batch's delivery time.
		t := time.NewTimer(time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return time.Since(start)
		}
	}
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}

// held reports whether n more messages would hold a sender: at least one of the
// app's delivering drains is backlogged and none of them has room.
func (a *App) held(n int) bool {
	held := false
	for _, r := range a.Drains() {
		if !r.Delivering() {
			continue
		}
		if !r.Backlogged(n) {
			return false
		}
		held = true
	}
	return held
}

// Announce publishes a line from the router itself (source kubeplex, process router).
func (a *App) Announce(pri uint8, text string) {
	rec := message.AppendStrings(nil, pri, time.Now(), message.SourcePlatform, message.ProcRouter, text)
	a.Publish([][]byte{rec})
}

// Drains returns the app's current drain runners.
func (a *App) Drains() []*drain.Runner {
	if rs := a.runners.Load(); rs != nil {
		return *rs
	}
	return nil
}

// New returns an empty dispatcher; it routes nothing until the first Apply.
func New(opts Options) *Dispatcher {
	if opts.QueueSize <= 0 {
		opts.QueueSize = drain.DefaultQueueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.Dialer == nil {
		opts.Dialer = &drain.Dialer{}
	}
	if opts.RemoveGrace <= 0 {
		opts.RemoveGrace = 5 * time.Second
	}
	if opts.Router == "" {
		opts.Router, _ = os.Hostname()
	}
	d := &Dispatcher{opts: opts, started: time.Now(), apps: map[string]*App{}, broken: map[string]routing.DrainStatus{},
		retired: map[string]*drain.Stats{}}
	d.opts.Metrics.Registry.MustRegister(&scrapeMetrics{d: d})
	return d
}

// Ready reports whether a table has been applied.
func (d *Dispatcher) Ready() bool { return d.snap.Load() != nil }

// Version returns the version of the table in use ("" before the first).
func (d *Dispatcher) Version() string {
	if s := d.snap.Load(); s != nil {
		return s.version
	}
	return ""
}

// ByToken maps an ingest token to its route.
func (d *Dispatcher) ByToken(token string) (*Route, bool) {
	s := d.snap.Load()
	if s == nil || token == "" {
		return nil, false
	}
	r, ok := s.tokens[sha256.Sum256([]byte(token))]
	if !ok || (!r.notAfter.IsZero() && time.Now().After(r.notAfter)) {
		return nil, false
	}
	return r, true
}

// IsPlatform reports whether token is one of kubeplex's own credentials.
func (d *Dispatcher) IsPlatform(token string) bool {
	s := d.snap.Load()
	return s != nil && token != "" && s.platform[sha256.Sum256([]byte(token))]
}

// ByHost maps a host name (load-balancer logs) to its app.
func (d *Dispatcher) ByHost(host []byte) (*App, bool) {
	s := d.snap.Load()
	if s == nil || len(host) == 0 {
		return nil, false
	}
	if a, ok := s.hosts[string(host)]; ok {
		return a, true
	}
	a, ok := s.hosts[strings.ToLower(string(host))]
	return a, ok
}

// App returns an app by ID.
func (d *Dispatcher) App(id string) (*App, bool) {
	s := d.snap.Load()
	if s == nil {
		return nil, false
	}
	a, ok := s.apps[id]
	return a, ok
}

// DrainIDs returns the IDs of the drains of the table in use (lock-free, as the
// lookups).
func (d *Dispatcher) DrainIDs() []string {
	s := d.snap.Load()
	if s == nil {
		return nil
	}
	var out []string
	for _, a := range s.apps {
		for _, r := range a.Drains() {
			out = append(out, r.Config.ID)
		}
	}
	return out
}

// Apply makes t the routing table. It returns an error only when t is unusable as a
// whole; a drain that cannot be built is reported in Status instead.
//
// Every replica applies every table, and a change usually touches one app of tens of
// thousands, so the work is the changed apps' plus bulk copies: each app of t is
// compared with the copy of its entry kept from the last apply, only the changed
// ones are validated and reconciled, and the lookup maps of the table in use are
// copied and patched for them. Ingest keeps reading the old maps until the new ones
// are swapped in whole.
func (d *Dispatcher) Apply(t *routing.Table) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	order, changed, kept, err := d.diff(t)
	if err != nil {
		d.opts.Metrics.TableErrors.Inc()
		return fmt.Errorf("apply routing table: %w", err)
	}
	if d.closed {
		return fmt.Errorf("apply routing table: router is shutting down")
	}
	var gone []*App
	if kept < len(d.apps) {
		for id, a := range d.apps {
			if a.seen != d.gen {
				gone = append(gone, a)
				delete(d.apps, id)
			}
		}
	}
	broken := map[string]routing.DrainStatus{}
	var stops []*drain.Runner
	changes := make([]appChange, 0, len(changed))
	for _, i := range changed {
		ta := &t.Apps[i]
		size := ta.History
		if size <= 0 {
			size = routing.DefaultHistory
		}
		c := appChange{a: order[i], to: ta}
		if c.a == nil {
			c.a = &App{ID: ta.ID, History: history.New(size), seen: d.gen, pos: i}
			d.apps[ta.ID] = c.a
			order[i] = c.a
		} else {
			c.a.History.Resize(size)
			c.from = c.a.spec
			c.had = true
		}
		a := c.a
		nb := len(broken)
		runners, stopped, moved := d.reconcileDrains(a, ta.Drains, broken)
		if moved {
			a.runners.Store(&runners)
			a.origins.Store(slices.ContainsFunc(runners, (*drain.Runner).UsesOrigin))
		}
		stops = append(stops, stopped...)
		a.broken = len(broken) > nb
		a.spec = ta.Clone()
		changes = append(changes, c)
	}
	// Apps gone from the table: stop their drains and free their history.
	for _, a := range gone {
		stops = append(stops, a.Drains()...)
		for _, r := range a.Drains() {
			d.retire(r)
		}
		a.runners.Store(nil)
		a.origins.Store(false)
		a.History.Release()
	}
	d.indexDrains(changes, gone)
	d.order = order

	next := &snapshot{
		version:  t.Version,
		platform: make(map[[sha256.Size]byte]bool, len(t.Platform)),
		apps:     maps.Clone(d.apps),
	}
	for _, tok := range t.Platform {
		key, ok := tokenKey(&tok)
		if !ok {
			d.opts.Logger.Warn("routing table platform credential digest is not hex; ignored")
			continue
		}
		next.platform[key] = true
	}
	if prev := d.snap.Load(); prev == nil || d.tangled || !d.patchLookups(next, prev, changes, gone) {
		d.buildLookups(next, t)
	}
	if d.opts.Owners != nil {
		next.drainApps = maps.Clone(d.drainApps)
	}
	d.broken = broken
	d.snap.Store(next)
	d.opts.Metrics.TableSwaps.Inc()
	for _, r := range stops {
		d.removing.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), d.opts.RemoveGrace)
			defer cancel()
			r.Stop(ctx, false)
		})
	}
	// Changes of the table (drain added, removed, ...) are not announced here: every
	// replica applies every table, so each would write its own copy. The manager's
	// leader writes them once (controllers/routes.Changes).
	d.opts.Logger.Info("routing table applied", "version", t.Version, "apps", len(t.Apps), "changed", len(changes), "removed", len(gone))
	return nil
}

// appChange is an app of the new table that differs from what was applied.
type appChange struct {
	a    *App
	to   *routing.App
	from routing.App // the entry applied before, when had
	had  bool
}

// diff checks t and returns its apps as applied (nil for a new one), the indexes of
// those that differ from what is applied (all of them on the first apply) and how
// many of the applied apps t still has.
// The unchanged apps were validated when they were applied, so what is checked is
// what Validate checks of the changed ones, among themselves and against the rest.
// It stamps the applied apps it finds with a new d.gen and changes nothing else.
func (d *Dispatcher) diff(t *routing.Table) (order []*App, changed []int, kept int, err error) {
	d.gen++
	order = make([]*App, len(t.Apps))
	next := 0 // where in d.order the next app of t probably is
	for i := range t.Apps {
		ta := &t.Apps[i]
		var a *App
		if next < len(d.order) && d.order[next].ID == ta.ID {
			a = d.order[next]
		} else {
			a = d.apps[ta.ID]
		}
		if a == nil {
			changed = append(changed, i)
			continue
		}
		if a.seen == d.gen {
			return nil, nil, 0, fmt.Errorf("validate routing table: app id %q empty or repeated", ta.ID)
		}
		next = a.pos + 1
		a.seen, a.pos = d.gen, i
		order[i] = a
		kept++
		// An app with a drain that could not be built is tried again, as every app
		// was before tables were applied by difference.
		if !a.broken && ta.Equal(&a.spec) {
			continue
		}
		a.dirty = d.gen
		changed = append(changed, i)
	}
	sub := routing.Table{SessionKeys: t.SessionKeys, Platform: t.Platform, Apps: make([]routing.App, 0, len(changed))}
	for _, i := range changed {
		sub.Apps = append(sub.Apps, t.Apps[i])
	}
	if err := sub.Validate(); err != nil {
		return nil, nil, 0, err
	}
	for _, i := range changed {
		for j := range t.Apps[i].Drains {
			id := t.Apps[i].Drains[j].ID
			if o := d.drainApps[id]; o != nil && o.seen == d.gen && o.dirty != d.gen {
				return nil, nil, 0, fmt.Errorf("validate routing table: drain id %q empty or repeated", id)
			}
		}
	}
	return order, changed, kept, nil
}

// eachReplaced calls f with every app spec a change replaces: the removed apps' and
// the changed apps' previous ones.
func eachReplaced(changes []appChange, gone []*App, f func(*App, *routing.App)) {
	for _, a := range gone {
		f(a, &a.spec)
	}
	for i := range changes {
		if changes[i].had {
			f(changes[i].a, &changes[i].from)
		}
	}
}

// indexDrains updates d.drainApps for the changed and removed apps.
func (d *Dispatcher) indexDrains(changes []appChange, gone []*App) {
	unindex := func(a *App, spec *routing.App) {
		for j := range spec.Drains {
			if id := spec.Drains[j].ID; d.drainApps[id] == a {
				delete(d.drainApps, id)
			}
		}
	}
	eachReplaced(changes, gone, unindex)
	if d.drainApps == nil {
		d.drainApps = map[string]*App{}
	}
	for _, c := range changes {
		for j := range c.to.Drains {
			d.drainApps[c.to.Drains[j].ID] = c.a
		}
	}
}

// patchLookups sets next's token and host maps to copies of prev's with the changed
// and removed apps' entries replaced. It reports false, leaving them unusable, when
// a token or host is claimed by two apps: only a build in table order gives the same
// answer as before then (the last app wins).
func (d *Dispatcher) patchLookups(next, prev *snapshot, changes []appChange, gone []*App) bool {
	next.tokens, next.hosts = maps.Clone(prev.tokens), maps.Clone(prev.hosts)
	unclaim := func(a *App, spec *routing.App) {
		for j := range spec.Tokens {
			if key, ok := tokenKey(&spec.Tokens[j]); ok {
				if r := next.tokens[key]; r != nil && r.App == a {
					delete(next.tokens, key)
				}
			}
		}
		for _, h := range spec.Hosts {
			if h = strings.ToLower(h); next.hosts[h] == a {
				delete(next.hosts, h)
			}
		}
	}
	eachReplaced(changes, gone, unclaim)
	for _, c := range changes {
		if d.claim(next, c.a, c.to) {
			return false
		}
	}
	return true
}

// buildLookups fills next's token and host maps from t, as every apply did before
// tables were applied by difference; d.tangled records whether two apps claim one
// token or host.
func (d *Dispatcher) buildLookups(next *snapshot, t *routing.Table) {
	// Sized up front: growing them was a good part of an apply's CPU.
	ntok, nhost := 0, 0
	for i := range t.Apps {
		ntok += len(t.Apps[i].Tokens)
		nhost += len(t.Apps[i].Hosts)
	}
	next.tokens = make(map[[sha256.Size]byte]*Route, ntok)
	next.hosts = make(map[string]*App, nhost)
	d.tangled = false
	for i := range t.Apps {
		if d.claim(next, d.order[i], &t.Apps[i]) {
			d.tangled = true
		}
	}
}

// claim enters ta's tokens and hosts into next's maps, and reports whether one of
// them was another app's.
func (d *Dispatcher) claim(next *snapshot, a *App, ta *routing.App) (tangled bool) {
	for _, tok := range ta.Tokens {
		if tok.Source == routing.PlatformSource {
			// Only kubeplex's own credentials (Table.Platform) write as kubeplex.
			d.opts.Logger.Warn("routing table gives an app token the platform source; token ignored", "app", a.ID)
			continue
		}
		key, ok := tokenKey(&tok)
		if !ok {
			d.opts.Logger.Warn("routing table token digest is not hex; token ignored", "app", a.ID)
			continue
		}
		r := &Route{App: a, Source: []byte(tok.Source), collector: tok.Collector}
		for _, s := range tok.AllowedSources {
			r.allowed = append(r.allowed, []byte(s))
		}
		if tok.NotAfter != nil {
			r.notAfter = *tok.NotAfter
		}
		if o := next.tokens[key]; o != nil && o.App != a {
			tangled = true
		}
		next.tokens[key] = r
	}
	for _, h := range ta.Hosts {
		h = strings.ToLower(h)
		if o := next.hosts[h]; o != nil && o != a {
			tangled = true
		}
		next.hosts[h] = a
	}
	return tangled
}

// tokenKey is the binary SHA-256 a token is looked up by: its hex digest decoded
// (either case, as Token.Digest allows) or the hash of a plain token. It reads the
// digest in place, without the copies Token.Digest and hex.Decode make, because
// Apply does this for every token of every table.
func tokenKey(tok *routing.Token) (key [sha256.Size]byte, ok bool) {
	if tok.SHA256 == "" {
		return sha256.Sum256([]byte(tok.Token)), true
	}
	if len(tok.SHA256) != 2*len(key) {
		return key, false
	}
	for i := range key {
		hi, ok1 := unhex(tok.SHA256[2*i])
		lo, ok2 := unhex(tok.SHA256[2*i+1])
		if !ok1 || !ok2 {
			return key, false
		}
		key[i] = hi<<4 | lo
	}
	return key, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// reconcileDrains returns the app's new runner set, reusing runners whose drain did
// not change; a drain whose destination changed gets a new runner on the same queue.
// It also returns the runners to stop, and whether the set differs from the app's
// current one (same runners in the same order).
func (d *Dispatcher) reconcileDrains(a *App, want []routing.Drain, broken map[string]routing.DrainStatus) (
	runners []*drain.Runner, stops []*drain.Runner, changed bool,
) {
	cur := a.Drains()
	// Most tables change a few drains of a few apps: an app whose drains are all
	// unchanged keeps its runner slice, and a drain whose fields are unchanged keeps
	// its runner without its URL being parsed again (that parse was about a third of
	// the CPU of applying a 50,000-drain table). Config.Equal compares the table's
	// fields only, so a drain need not be parsed to be compared.
	same := len(cur) == len(want)
	for i := 0; same && i < len(want); i++ {
		same = cur[i].Config.ID == want[i].ID && cur[i].Config.Equal(&drain.Config{Drain: want[i]})
	}
	if same {
		return cur, nil, false
	}
	same = len(cur) == len(want)
	old := make(map[string]*drain.Runner, len(cur))
	for _, r := range cur {
		old[r.Config.ID] = r
	}
	for i, td := range want {
		prev, had := old[td.ID]
		delete(old, td.ID)
		if had && prev.Config.Equal(&drain.Config{Drain: td}) {
			runners = append(runners, prev)
			same = same && cur[i] == prev
			continue
		}
		same = false
		cfg, err := newConfig(a.ID, td)
		if err != nil {
			now := time.Now()
			broken[td.ID] = routing.DrainStatus{LastError: err.Error(), LastErrorTime: &now}
			if had {
				// Its old destination is no longer wanted: stop it, as a removed drain.
				stops = append(stops, prev)
				d.retire(prev)
			}
			continue
		}
		q, st := (*drain.Queue)(nil), (*drain.Stats)(nil)
		if had {
			// Same drain, new destination or credentials: hand the queue over so no
			// message is lost to the change, and cut the old delivery short.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			prev.Stop(ctx, true)
			q, st = prev.Queue, prev.Stats
		} else {
			st = d.retired[td.ID]
			delete(d.retired, td.ID)
			if st == nil {
				st = &drain.Stats{}
			}
			q = drain.NewQueue(d.opts.QueueSize, st)
		}
		r, err := d.startRunner(a, cfg, q, st, nil)
		if err != nil {
			now := time.Now()
			broken[td.ID] = routing.DrainStatus{LastError: err.Error(), LastErrorTime: &now}
			if had {
				// No successor for the handed-over queue: stopping prev again closes it.
				stops = append(stops, prev)
			}
			continue
		}
		runners = append(runners, r)
	}
	for _, r := range old {
		stops = append(stops, r)
		d.retire(r)
	}
	return runners, stops, !same || len(runners) != len(cur)
}

// retire keeps a removed drain's counters for a later re-add (d.mu held).
func (d *Dispatcher) retire(r *drain.Runner) {
	if len(d.retired) >= maxRetired {
		for id := range d.retired { // any one: an old removal's counts matter least
			delete(d.retired, id)
			break
		}
	}
	d.retired[r.Config.ID] = r.Stats
}

func newConfig(app string, td routing.Drain) (*drain.Config, error) {
	u, err := url.Parse(td.URL)
	if err != nil {
		return nil, fmt.Errorf("parse drain URL: %w", redactURLError(err))
	}
	u.User = nil // credentials come from Username/Password, never from the URL
	return &drain.Config{Drain: td, App: app, URL: u}, nil
}

// redactURLError drops the URL text from a parse error, which may hold userinfo.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Drain types, as DrainType returns them and as the delivery metrics label them.
const (
	TypeSyslog = "syslog"
	TypeHTTP   = "http"
	TypeOTLP   = "otlp"
)

// DrainType names the implementation for a URL scheme.
func DrainType(scheme string) string {
	switch scheme {
	case "syslog", "syslog+tls": // the schemes Logplex and the LogDrain CRD accept; no syslog+tcp
		return TypeSyslog
	case "http", "https":
		return TypeHTTP
	case "otlp+http", "otlp+https", "otlp+grpc", "otlp+grpcs":
		return TypeOTLP
	}
	return ""
}

func (d *Dispatcher) startRunner(a *App, cfg *drain.Config, q *drain.Queue, st *drain.Stats, carry *drain.Carry) (*drain.Runner, error) {
	log := d.opts.Logger.With("app", a.ID, "drain", cfg.ID)
	env := drain.Env{
		Dialer:    d.opts.Dialer,
		Logger:    log,
		UserAgent: d.opts.UserAgent,
		Report:    func(err error) { st.Fail(err, time.Now()) },
		Announce:  func(text string) { a.Announce(wire.PriorityError, text) },
	}
	var (
		dr  drain.Drain
		err error
	)
	// One case per drain type; a new type is a new package and a new case.
	switch typ := DrainType(cfg.URL.Scheme); {
	case typ != "" && d.opts.Owners != nil && !d.opts.Owners.Owns(cfg.ID):
		// Only the OTLP drain is an OriginUser (otlp.Sink.UsesOrigin).
		dr = d.opts.Owners.Forwarder(cfg, env, typ == TypeOTLP)
	case typ == TypeSyslog:
		dr, err = syslog.New(cfg, env, d.opts.Syslog)
	case typ == TypeHTTP:
		dr, err = httpdrain.New(cfg, env, d.opts.HTTP)
	case typ == TypeOTLP:
		dr, err = otlp.New(cfg, env, d.opts.OTLP)
	default:
		err = fmt.Errorf("new drain %s: unsupported scheme %q", cfg.ID, cfg.URL.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return drain.NewRunner(cfg, q, st, dr, drain.RunnerOptions{Logger: log, Carry: carry,
		Observe: d.opts.Metrics.ObserveDelivery(DrainType(cfg.URL.Scheme))}), nil
}

// Delivering returns the runner of drain id when this replica delivers it itself
// (not forwarding it to an owner): where lines forwarded by other replicas go.
func (d *Dispatcher) Delivering(id string) (*drain.Runner, bool) {
	s := d.snap.Load()
	if s == nil {
		return nil, false
	}
	a, ok := s.drainApps[id]
	if !ok {
		return nil, false
	}
	for _, r := range a.Drains() {
		if r.Config.ID == id && !r.Forwarding() {
			return r, true
		}
	}
	return nil, false
}

// Reown gives every drain whose ownership changed (Options.Owners) a runner of the
// other kind: delivering where this replica became an owner, forwarding where it
// stopped being one. As for a drain whose destination changed, the new runner takes
// over the queue and counters. What the old runner had in flight (drain.Runner.Handover):
// one batch not begun goes first with the new runner, one begun is cut short and
// counted as dropped (announced in the next L10); an HTTP or OTLP drain's requests in
// flight complete in the background, for up to RemoveGrace. It returns how many
// drains changed.
func (d *Dispatcher) Reown() int {
	if d.opts.Owners == nil {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0
	}
	moved := 0
	for _, a := range d.apps {
		cur := a.Drains()
		var next []*drain.Runner
		for i, r := range cur {
			if r.Forwarding() != d.opts.Owners.Owns(r.Config.ID) {
				continue // forwarding and not an owner, or delivering and an owner
			}
			if next == nil {
				next = append([]*drain.Runner(nil), cur...)
			}
			// A batch the old runner had taken and not begun to send goes first
			// with the new one; one it had begun to send is counted as dropped.
			carry := r.Handover()
			nr, err := d.startRunner(a, r.Config, r.Queue, r.Stats, carry)
			if err != nil {
				// Cannot happen for a drain that was built before; if it does, the
				// drain is reported broken and its queue's lines are counted dropped.
				now := time.Now()
				d.broken[r.Config.ID] = routing.DrainStatus{LastError: err.Error(), LastErrorTime: &now}
				a.broken = true // the next apply tries it again
				carry.Drop(r.Queue)
				r.Stop(context.Background(), false)
				next[i] = nil
				continue
			}
			next[i] = nr
			moved++
			if r.Concurrent() {
				// Its requests in flight go on; the new runner has the queue.
				d.removing.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), d.opts.RemoveGrace)
					defer cancel()
					r.Stop(ctx, true)
				})
			}
		}
		if next != nil {
			kept := next[:0]
			for _, r := range next {
				if r != nil {
					kept = append(kept, r)
				}
			}
			a.runners.Store(&kept)
			a.origins.Store(slices.ContainsFunc(kept, (*drain.Runner).UsesOrigin))
		}
	}
	return moved
}

// Status returns the health report the manager reads.
func (d *Dispatcher) Status() routing.RouterStatus {
	st := routing.RouterStatus{Router: d.opts.Router, Started: d.started, Version: d.Version(),
		Drains: map[string]routing.DrainStatus{}}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.apps {
		for _, r := range a.Drains() {
			st.Drains[r.Config.ID] = r.Stats.Status(r.Queue.Len())
		}
	}
	for id, b := range d.broken {
		st.Drains[id] = b
	}
	return st
}

// Shutdown stops every drain, flushing queues until ctx ends; what is still queued
// then is counted as dropped. Drains removed from the table shortly before get until
// ctx ends to finish their flush too. Apply refuses tables afterwards.
func (d *Dispatcher) Shutdown(ctx context.Context) {
	d.mu.Lock()
	d.closed = true
	var all []*drain.Runner
	for _, a := range d.apps {
		all = append(all, a.Drains()...)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range all {
		wg.Go(func() { r.Stop(ctx, false) })
	}
	wg.Wait()
	removed := make(chan struct{})
	go func() { d.removing.Wait(); close(removed) }()
	select {
	case <-removed:
	case <-ctx.Done():
	}
}
