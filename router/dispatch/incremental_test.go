package dispatch_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/message"
)

// A base table for the incremental-apply tests: apps a/0…a/5, each with an ingest
// token, a collector token, a host and two drains. Each call builds it afresh, so
// no two tables share a slice (as tables a router decodes do not).
func baseApps() []routing.App {
	apps := make([]routing.App, 6)
	for i := range apps {
		apps[i] = routing.App{ID: fmt.Sprintf("a/%d", i), History: 5,
			Tokens: []routing.Token{{Token: fmt.Sprintf("t.%d", i), Source: "app", AllowedSources: []string{"addon"}},
				{SHA256: routing.HashToken(fmt.Sprintf("c.%d", i)), Source: "app", Collector: true}},
			Hosts: []string{fmt.Sprintf("h%d.example.com", i)},
			Drains: []routing.Drain{
				{ID: fmt.Sprintf("a/d%d-0", i), Token: fmt.Sprintf("d.%d.0", i), URL: "syslog://127.0.0.1:9"},
				{ID: fmt.Sprintf("a/d%d-1", i), Token: fmt.Sprintf("d.%d.1", i), URL: "https://127.0.0.1:9/logs",
					Username: "u", Password: "p", HMACKey: "00ff"},
			}}
	}
	return apps
}

func table(apps []routing.App) *routing.Table {
	t := &routing.Table{Apps: apps, Platform: []routing.Token{{Token: "p.1", Source: routing.PlatformSource}}}
	t.Seal()
	return t
}

func edit(f func(apps []routing.App) []routing.App) *routing.Table { return table(f(baseApps())) }

// state is everything ingest and the manager can see of a dispatcher, for the
// tokens, hosts, apps and drains the tables name (and some they do not).
func state(t *testing.T, d *dispatch.Dispatcher, tables ...*routing.Table) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version %s\n", d.Version())
	tokens := []string{"p.1", "t.none"}
	hosts := []string{"H0.EXAMPLE.COM", "none.example.com"}
	ids := []string{"a/none"}
	for _, tb := range tables {
		for _, a := range tb.Apps {
			ids = append(ids, a.ID)
			hosts = append(hosts, a.Hosts...)
			for _, tok := range a.Tokens {
				if tok.Token != "" {
					tokens = append(tokens, tok.Token)
				}
			}
		}
	}
	for i := range 8 {
		tokens = append(tokens, fmt.Sprintf("c.%d", i), fmt.Sprintf("t.%d", i), fmt.Sprintf("t.%d.new", i))
	}
	slices.Sort(tokens)
	slices.Sort(hosts)
	slices.Sort(ids)
	for _, tok := range slices.Compact(tokens) {
		r, ok := d.ByToken(tok)
		fmt.Fprintf(&b, "token %s: platform %v", tok, d.IsPlatform(tok))
		if ok {
			fmt.Fprintf(&b, " app %s source %s collector %v addon→%s kubeplex[web.1]→%s", r.App.ID, r.Source, r.Collector(),
				r.SourceFor([]byte("addon"), nil), r.SourceFor([]byte(routing.PlatformSource), []byte("web.1")))
		}
		b.WriteByte('\n')
	}
	for _, h := range slices.Compact(hosts) {
		a, ok := d.ByHost([]byte(h))
		fmt.Fprintf(&b, "host %s: %v", h, ok)
		if ok {
			b.WriteString(" " + a.ID)
		}
		b.WriteByte('\n')
	}
	for _, id := range slices.Compact(ids) {
		a, ok := d.App(id)
		fmt.Fprintf(&b, "app %s: %v", id, ok)
		if ok {
			// History's size, seen through what it keeps.
			for range 10 {
				a.History.Append(message.AppendStrings(nil, 190, time.Now(), "app", "web.1", "x"))
			}
			fmt.Fprintf(&b, " keeps %d", a.History.Len())
			for _, r := range a.Drains() {
				c := r.Config
				fmt.Fprintf(&b, " [%s %s %s %s %s %s %s]", c.ID, c.App, c.Token, c.URL, c.Username, c.Password, c.HMACKey)
			}
		}
		b.WriteByte('\n')
	}
	drains := d.DrainIDs()
	slices.Sort(drains)
	fmt.Fprintf(&b, "drains %v\n", drains)
	st := d.Status()
	reported := make([]string, 0, len(st.Drains))
	for id, s := range st.Drains {
		reported = append(reported, id+" "+s.LastError)
	}
	slices.Sort(reported)
	fmt.Fprintf(&b, "status %q\n", reported)
	return b.String()
}

// TestIncrementalApplyMatchesFull: a dispatcher that applied the steps of a case one
// after the other (each apply a difference from the last) ends in exactly the state
// of one that applied only the last table, and refuses what a fresh one refuses.
func TestIncrementalApplyMatchesFull(t *testing.T) {
	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(time.Hour)
	tests := []struct {
		name  string
		steps []*routing.Table
		// wantErr: the last step is refused, by both; the incremental dispatcher
		// keeps the state of the step before.
		wantErr bool
	}{
		{name: "nothing changed", steps: []*routing.Table{table(baseApps())}},
		{name: "drain added", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[2].Drains = append(a[2].Drains, routing.Drain{ID: "a/new", Token: "d.new", URL: "syslog+tls://127.0.0.1:6514"})
			return a
		})}},
		{name: "drain removed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[3].Drains = a[3].Drains[1:]
			return a
		})}},
		{name: "every drain of an app removed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[3].Drains = nil
			return a
		})}},
		{name: "destination changed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[1].Drains[0].URL = "syslog://127.0.0.2:9"
			return a
		})}},
		{name: "drain credentials changed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[1].Drains[1].Password, a[1].Drains[1].HMACKey = "p2", "ff00"
			return a
		})}},
		{name: "drain token changed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[4].Drains[1].Token = "d.rotated"
			return a
		})}},
		{name: "drain moved to another app", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[5].Drains = append(a[5].Drains, a[0].Drains[0])
			a[0].Drains = a[0].Drains[1:]
			return a
		})}},
		{name: "token rotated with grace", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[2].Tokens = []routing.Token{{Token: "t.2.new", Source: "app"}, {Token: "t.2", Source: "app", NotAfter: &future},
				a[2].Tokens[1]}
			return a
		})}},
		{name: "rotated token's grace over", steps: []*routing.Table{
			edit(func(a []routing.App) []routing.App {
				a[2].Tokens = []routing.Token{{Token: "t.2.new", Source: "app"}, {Token: "t.2", Source: "app", NotAfter: &future}}
				return a
			}),
			edit(func(a []routing.App) []routing.App {
				a[2].Tokens = []routing.Token{{Token: "t.2.new", Source: "app"}, {Token: "t.2", Source: "app", NotAfter: &past}}
				return a
			}),
		}},
		{name: "token source and grants changed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[0].Tokens[0].Source, a[0].Tokens[0].AllowedSources = "addon", nil
			a[0].Tokens[1].Collector = false
			return a
		})}},
		{name: "token moved to another app", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[4].Tokens = append(a[4].Tokens, a[1].Tokens[0])
			a[1].Tokens = a[1].Tokens[1:]
			return a
		})}},
		{name: "token with the platform source ignored", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[3].Tokens[0].Source = routing.PlatformSource
			return a
		})}},
		{name: "host moved", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[1].Hosts = append(a[1].Hosts, a[0].Hosts[0])
			a[0].Hosts = nil
			return a
		})}},
		{name: "host renamed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[5].Hosts = []string{"other.example.com"}
			return a
		})}},
		{name: "history changed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[2].History = 3
			return a
		})}},
		{name: "app removed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App { return slices.Delete(a, 2, 3) })}},
		{name: "first and last apps removed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App { return a[1 : len(a)-1] })}},
		{name: "app added", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			return append(a, routing.App{ID: "a/25", Tokens: []routing.Token{{Token: "t.7", Source: "app"}},
				Hosts: []string{"h7.example.com"}, Drains: []routing.Drain{{ID: "a/d7", Token: "d.7", URL: "syslog://127.0.0.1:9"}}})
		})}},
		{name: "app added in the middle, another removed", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a = slices.Delete(a, 4, 5)
			return slices.Insert(a, 1, routing.App{ID: "a/05", Tokens: []routing.Token{{Token: "t.6", Source: "app"}}})
		})}},
		{name: "apps in another order", steps: []*routing.Table{func() *routing.Table {
			tb := table(baseApps())
			slices.Reverse(tb.Apps)
			return tb
		}()}},
		{name: "everything at once", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[0].Drains[0].URL = "syslog://127.0.0.3:9"
			a[1].Hosts = nil
			a[2].Tokens = a[2].Tokens[:1]
			a[3].History = 2
			return append(slices.Delete(a, 4, 5), routing.App{ID: "a/9", Hosts: []string{"h1.example.com"}})
		})}},
		{name: "every app replaced", steps: []*routing.Table{table([]routing.App{{ID: "b/0", Tokens: []routing.Token{{Token: "t.0", Source: "app"}},
			Drains: []routing.Drain{{ID: "a/d0-0", Token: "d.x", URL: "syslog://127.0.0.1:9"}}}})}},
		{name: "empty table", steps: []*routing.Table{table(nil)}},
		{name: "two apps claim a token, the later wins", steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[4].Tokens = append(a[4].Tokens, routing.Token{Token: "t.1", Source: "other"})
			return a
		})}},
		{name: "two apps claim a token, then one gives it up", steps: []*routing.Table{
			edit(func(a []routing.App) []routing.App {
				a[4].Tokens = append(a[4].Tokens, routing.Token{Token: "t.1", Source: "other"})
				return a
			}),
			edit(func(a []routing.App) []routing.App {
				a[4].Drains = nil // a change elsewhere in the app that won
				a[4].Tokens = append(a[4].Tokens, routing.Token{Token: "t.1", Source: "other"})
				return a
			}),
			table(baseApps()),
		}},
		{name: "two apps claim a host, then the winner gives it up", steps: []*routing.Table{
			edit(func(a []routing.App) []routing.App {
				a[3].Hosts = append(a[3].Hosts, "h0.example.com")
				return a
			}),
			table(baseApps()),
		}},
		{name: "drain URL broken, then fixed", steps: []*routing.Table{
			edit(func(a []routing.App) []routing.App {
				a[1].Drains[0].URL = "syslog://[::1"
				return a
			}),
			edit(func(a []routing.App) []routing.App {
				a[1].Drains[0].URL = "syslog://[::1"
				a[2].History = 4 // another app's change: the broken one stays reported
				return a
			}),
			table(baseApps()),
		}},
		{name: "unsupported scheme stays reported", steps: []*routing.Table{
			edit(func(a []routing.App) []routing.App {
				a[1].Drains[0].URL = "syslog+tcp://127.0.0.1:9"
				return a
			}),
			edit(func(a []routing.App) []routing.App {
				a[1].Drains[0].URL = "syslog+tcp://127.0.0.1:9"
				a[0].History = 4
				return a
			}),
		}},
		{name: "changed app takes an unchanged app's drain ID", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[2].Drains[0].ID = a[3].Drains[1].ID
			return a
		})}},
		{name: "new app takes an unchanged app's drain ID", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			return append(a, routing.App{ID: "a/9", Drains: []routing.Drain{{ID: a[0].Drains[0].ID, URL: "syslog://127.0.0.1:9"}}})
		})}},
		{name: "two changed apps take one drain ID", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[1].Drains[0].ID, a[2].Drains[0].ID = "a/same", "a/same"
			return a
		})}},
		{name: "unchanged app twice", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			return append(a, baseApps()[3])
		})}},
		{name: "changed app twice", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[3].History = 7
			return append(a, a[3])
		})}},
		{name: "new app twice", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			return append(a, routing.App{ID: "a/9"}, routing.App{ID: "a/9"})
		})}},
		{name: "changed token without secret", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[1].Tokens[0].Token = ""
			return a
		})}},
		{name: "negative history", wantErr: true, steps: []*routing.Table{edit(func(a []routing.App) []routing.App {
			a[1].History = -1
			return a
		})}},
		{name: "bad session key", wantErr: true, steps: []*routing.Table{func() *routing.Table {
			tb := table(baseApps())
			tb.SessionKeys = []routing.SessionKey{{ID: "k", Key: "zz"}}
			return tb
		}()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc := newDispatcher(t)
			if err := inc.Apply(table(baseApps())); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.steps[:len(tt.steps)-1] {
				if err := inc.Apply(s); err != nil {
					t.Fatal(err)
				}
			}
			last := tt.steps[len(tt.steps)-1]
			before := state(t, inc, append(tt.steps, table(baseApps()))...)
			err := inc.Apply(last)
			if (err != nil) != tt.wantErr {
				t.Fatalf("incremental apply: err = %v, wantErr %v", err, tt.wantErr)
			}
			full := newDispatcher(t)
			if ferr := full.Apply(last); (ferr != nil) != tt.wantErr {
				t.Fatalf("full apply: err = %v, wantErr %v", ferr, tt.wantErr)
			}
			if tt.wantErr {
				if got := state(t, inc, append(tt.steps, table(baseApps()))...); got != before {
					t.Fatalf("a refused table changed the state:\n%s", diffLines(before, got))
				}
				return
			}
			got, want := state(t, inc, append(tt.steps, table(baseApps()))...), state(t, full, append(tt.steps, table(baseApps()))...)
			if got != want {
				t.Fatalf("incremental apply differs from a full one (-full +incremental):\n%s", diffLines(want, got))
			}
		})
	}
}

// diffLines lists the lines of a and b that the other lacks.
func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}

// TestApplyNeverShowsAMix: while tables that move tokens and hosts from some apps
// to others are applied again and again, every lookup made in one snapshot finds
// each token and host where that snapshot's table puts it: the maps patched for a
// change are copies, swapped in whole.
func TestApplyNeverShowsAMix(t *testing.T) {
	d := newDispatcher(t)
	// Apps a/0…a/99 hand their token and host to b/0…b/99 and take them back; the
	// other apps, unchanged, make the maps worth copying and patching.
	const moving = 100
	gen := func(moved bool) *routing.Table {
		apps := make([]routing.App, 0, 4*moving+200)
		for i := range 2*moving + 200 {
			apps = append(apps, routing.App{ID: fmt.Sprintf("c/%d", i), Tokens: []routing.Token{{Token: fmt.Sprintf("c.%d", i), Source: "app"}}})
		}
		for i := range moving {
			a := routing.App{ID: fmt.Sprintf("a/%d", i), Tokens: []routing.Token{{Token: fmt.Sprintf("t.%d", i), Source: "app"}},
				Hosts: []string{fmt.Sprintf("h%d", i)}}
			b := routing.App{ID: fmt.Sprintf("b/%d", i)}
			if moved {
				a.Tokens, b.Tokens, a.Hosts, b.Hosts = b.Tokens, a.Tokens, b.Hosts, a.Hosts
			}
			apps = append(apps, a, b)
		}
		return table(apps)
	}
	tables := []*routing.Table{gen(false), gen(true)}
	tokens, hosts := make([]string, 0, moving), make([]string, 0, moving)
	want := map[string][]string{}
	for i := range moving {
		tokens, hosts = append(tokens, fmt.Sprintf("t.%d", i)), append(hosts, fmt.Sprintf("h%d", i))
	}
	for _, tb := range tables {
		for _, id := range append(slices.Clone(tokens), hosts...) {
			for _, a := range tb.Apps {
				if slices.ContainsFunc(a.Tokens, func(t routing.Token) bool { return t.Token == id }) || slices.Contains(a.Hosts, id) {
					want[tb.Version] = append(want[tb.Version], a.ID)
				}
			}
		}
	}
	if err := d.Apply(tables[0]); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var checked atomic.Int64
	errs := make(chan string, 1)
	wg.Go(func() {
		for !stop.Load() {
			v, got := dispatch.Lookup(d, tokens, hosts)
			if !slices.Equal(got, want[v]) {
				select {
				case errs <- fmt.Sprintf("a lookup in the snapshot of table %s found\n%v\nwhere the table has\n%v", v, got, want[v]):
				default:
				}
				return
			}
			checked.Add(1)
		}
	})
	for i := range 400 {
		if err := d.Apply(tables[(i+1)%2]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	if checked.Load() == 0 {
		t.Fatal("no lookup ran while the tables were applied")
	}
}
