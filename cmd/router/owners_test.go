package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router"
	peer "github.com/kubeplex/kubeplex/router/drainpeer"
)

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }() // read-only
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestDrainOwners: three router processes with --drain-owners 2 agree, each on its
// own, on the owners of every drain: every drain is owned by exactly two of them,
// each router lists all three as members, and the metric counts what /ownership
// lists.
func TestDrainOwners(t *testing.T) {
	const drains = 60
	tbl := routing.Table{SessionKeys: sessionKeys}
	for a := range 3 {
		app := routing.App{ID: fmt.Sprintf("ns%d/app", a),
			Tokens: []routing.Token{{Token: fmt.Sprintf("t.%08d-1111-4111-8111-111111111111", a), Source: "app"}}}
		for d := a; d < drains; d += 3 {
			// Nothing is sent to these apps, so no router dials the drains.
			app.Drains = append(app.Drains, routing.Drain{ID: fmt.Sprintf("ns%d/drain-%02d", a, d),
				Token: fmt.Sprintf("d.%08d-2222-4222-8222-222222222222", d), URL: "syslog://127.0.0.1:9"})
		}
		tbl.Apps = append(tbl.Apps, app)
	}
	rs, all := startOwnerSet(t, tbl, 2)

	count := map[string]int{}
	for _, r := range rs {
		var rep router.OwnershipReport
		testenv.Eventually(t, r.base+" reports the table's ownership", func() error {
			if err := getJSON("http://"+r.admin+"/ownership", &rep); err != nil {
				return err
			}
			if rep.Version == "" {
				return fmt.Errorf("no table yet: %+v", rep)
			}
			return nil
		})
		if rep.Self != r.base || !slices.Equal(rep.Members, all) || rep.Owners != 2 {
			t.Fatalf("%s: self %q, members %v, owners %d; want %q, %v, 2", r.base, rep.Self, rep.Members, rep.Owners, r.base, all)
		}
		for _, id := range rep.Owned {
			count[id]++
		}
		resp, err := http.Get("http://" + r.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if want := fmt.Sprintf("kubeplex_router_drains_owned %d\n", len(rep.Owned)); !strings.Contains(string(body), want) {
			t.Errorf("%s: metrics lack %q", r.base, want)
		}
		if len(rep.Owned) == 0 || len(rep.Owned) == drains {
			t.Errorf("%s owns %d of %d drains: ownership is not spread", r.base, len(rep.Owned), drains)
		}
	}
	if len(count) != drains {
		t.Errorf("%d drains have an owner, want %d", len(count), drains)
	}
	for id, n := range count {
		if n != 2 {
			t.Errorf("drain %s has %d owners, want 2", id, n)
		}
	}
}

// ownedTable is apps ns<a>/app, each with one syslog drain to its own sink.
func ownedTable(sinks []*peer.SyslogSink) routing.Table {
	tbl := routing.Table{SessionKeys: sessionKeys}
	for a, s := range sinks {
		tbl.Apps = append(tbl.Apps, routing.App{ID: fmt.Sprintf("ns%d/app", a),
			Tokens: []routing.Token{{Token: ownedAppToken(a), Source: "app"}},
			Drains: []routing.Drain{{ID: fmt.Sprintf("ns%d/drain", a), Token: fmt.Sprintf("d.%08d-2222-4222-8222-222222222222", a),
				URL: "syslog://" + s.Addr}}})
	}
	return tbl
}

func ownedAppToken(a int) string { return fmt.Sprintf("t.%08d-1111-4111-8111-111111111111", a) }

// postOwned posts n lines "r<router> p<phase> n<seq>" to app a through router r.
func postOwned(t *testing.T, base string, r, a, phase, from, n int) {
	t.Helper()
	var b []byte
	for i := from; i < from+n; i++ {
		b = wire.AppendFrame(b, fmt.Appendf(nil, "<190>1 2026-11-25T10:00:00.000000+00:00 host app web.1 - - r%d p%d n%d", r, phase, i))
	}
	resp, _ := post(t, base+"/logs", ownedAppToken(a), string(b), map[string]string{wire.HeaderMsgCount: fmt.Sprint(n)})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /logs to %s = %d", base, resp.StatusCode)
	}
}

// ownedLines parses a sink's lines: per (router, phase), the sequence numbers in
// the order received; L10 notices are summed apart.
func ownedLines(ms []wire.Message) (seqs map[[2]int][]int, announced int, err error) {
	seqs = map[[2]int][]int{}
	for _, m := range ms {
		var r, p, n int
		if _, e := fmt.Sscanf(string(m.Text), "r%d p%d n%d", &r, &p, &n); e == nil {
			seqs[[2]int{r, p}] = append(seqs[[2]int{r, p}], n)
			continue
		}
		var dropped int
		if _, e := fmt.Sscanf(string(m.Text), "Error L10 (output buffer overflow): %d messages dropped", &dropped); e == nil {
			announced += dropped
			continue
		}
		return nil, 0, fmt.Errorf("unexpected line %q", m.Text)
	}
	return seqs, announced, nil
}

// waitMembers waits until every router in rs reports want (sorted) as its members.
// startOwnerSet starts three routers that know each other with --drain-owners k
// and waits until each lists all three as members; it returns them and their
// sorted base URLs.
func startOwnerSet(t *testing.T, tbl routing.Table, k int) ([]routerProc, []string) {
	t.Helper()
	rs := startRouterSet(t, 3, tbl, "--drain-owners", fmt.Sprint(k), "--self-url", "{self}")
	all := make([]string, 0, len(rs))
	for _, r := range rs {
		all = append(all, r.base)
	}
	slices.Sort(all)
	waitMembers(t, rs, all)
	return rs, all
}

func waitMembers(t *testing.T, rs []routerProc, want []string) {
	t.Helper()
	for _, r := range rs {
		testenv.Eventually(t, r.base+" reports members "+strings.Join(want, ","), func() error {
			var rep router.OwnershipReport
			if err := getJSON("http://"+r.admin+"/ownership", &rep); err != nil {
				return err
			}
			if rep.Version == "" || !slices.Equal(rep.Members, want) {
				return fmt.Errorf("version %q, members %v", rep.Version, rep.Members)
			}
			return nil
		})
	}
}

// TestDrainOwnersDeliver: with --drain-owners K over 3 router processes, only a
// drain's K owners connect to it; lines posted to every replica reach each drain
// exactly once, in order per replica they were posted to, and the replicas'
// delivered counts add up to what the drain got (a forwarder counts its lines as
// forwarded). With K=1, an owner is then killed: the two others deliver its drains,
// every line posted to them meanwhile is delivered or counted as dropped (and the
// drops announced with L10), and once they agree on the new owners nothing is lost.
func TestDrainOwnersDeliver(t *testing.T) {
	for _, k := range []int{1, 2} {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) { drainOwnersDeliver(t, k) })
	}
}

func drainOwnersDeliver(t *testing.T, k int) {
	const apps, posts, per = 6, 3, 20
	sinks := make([]*peer.SyslogSink, apps)
	for a := range sinks {
		sinks[a] = peer.NewSyslogSink(t, nil)
	}
	rs, _ := startOwnerSet(t, ownedTable(sinks), k)

	// Phase 0: every replica gets lines for every app.
	for r := range rs {
		for a := range apps {
			for p := range posts {
				postOwned(t, rs[r].base, r, a, 0, p*per, per)
			}
		}
	}
	for a, s := range sinks {
		s.WaitFor(t, len(rs)*posts*per)
		seqs, announced, err := ownedLines(s.Messages())
		if err != nil || announced != 0 {
			t.Fatalf("drain %d: %v, %d announced drops", a, err, announced)
		}
		for r := range rs {
			want := make([]int, posts*per)
			for i := range want {
				want[i] = i
			}
			if got := seqs[[2]int{r, 0}]; !slices.Equal(got, want) {
				t.Errorf("drain %d, lines posted to router %d: got %v, want each once in order", a, r, got)
			}
		}
		if n := s.Conns(); n != k {
			t.Errorf("drain %d has %d connections, want K=%d", a, n, k)
		}
	}
	// Counted once: the owners' delivered add up to what the drains got, the
	// others' lines are counted as forwarded.
	var delivered, forwarded int64
	for _, r := range rs {
		for _, ds := range status(t, "http://"+r.admin).Drains {
			delivered += ds.Delivered
			forwarded += ds.Forwarded
			if ds.Dropped != 0 {
				t.Errorf("%s dropped %d in the steady state", r.base, ds.Dropped)
			}
		}
	}
	if total := int64(apps * len(rs) * posts * per); delivered != total || forwarded == 0 || forwarded >= total {
		t.Errorf("replicas report %d delivered, %d forwarded; want %d delivered, some forwarded", delivered, forwarded, total)
	}
	if k != 1 {
		return
	}

	// Kill router 0 without a chance to flush, and post to the two others at once.
	if err := rs[0].proc.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-rs[0].proc.Exited()
	live := rs[1:]
	for i, r := range live {
		for a := range apps {
			postOwned(t, r.base, i+1, a, 1, 0, per)
		}
	}
	waitMembers(t, live, slices.Sorted(slices.Values([]string{live[0].base, live[1].base})))
	// Phase 2, once they agree: nothing may be lost.
	for i, r := range live {
		for a := range apps {
			postOwned(t, r.base, i+1, a, 2, 0, per)
		}
	}
	for a, s := range sinks {
		name := fmt.Sprintf("ns%d/drain", a)
		testenv.Eventually(t, name+": phase 1 delivered or counted, phase 2 delivered", func() error {
			seqs, announced, err := ownedLines(s.Messages())
			if err != nil {
				return err
			}
			var dropped int64
			for _, r := range live {
				dropped += status(t, "http://"+r.admin).Drains[name].Dropped
			}
			got1 := len(seqs[[2]int{1, 1}]) + len(seqs[[2]int{2, 1}])
			if got1+int(dropped) != len(live)*per {
				return fmt.Errorf("phase 1: %d delivered + %d dropped, want %d", got1, dropped, len(live)*per)
			}
			for _, r := range []int{1, 2} {
				if got := seqs[[2]int{r, 2}]; len(got) != per {
					return fmt.Errorf("phase 2, router %d: %d of %d lines", r, len(got), per)
				}
			}
			if int64(announced) != dropped {
				return fmt.Errorf("%d drops counted, %d announced", dropped, announced)
			}
			return nil
		})
		seqs, announced, _ := ownedLines(s.Messages())
		t.Logf("%s: phase 1 lost %d of %d (counted and announced)", name, announced, len(live)*per)
		for key, got := range seqs {
			if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
				t.Errorf("drain %d, router %d phase %d: %v not once each in order", a, key[0], key[1], got)
			}
		}
	}
}

// TestDrainOwnersOrigin: with --drain-owners 1 over 3 router processes, an OTLP
// drain gets the pod and node of the collector that sent each line whichever
// replica the line entered, the drain's owner or one that forwards to it; a syslog
// drain of the same app gets the frames it always did, without them.
func TestDrainOwnersOrigin(t *testing.T) {
	const apps, per = 3, 10
	tbl := routing.Table{SessionKeys: sessionKeys}
	rvs := make([]*peer.OTLPReceiver, apps)
	sinks := make([]*peer.SyslogSink, apps)
	for a := range apps {
		rvs[a] = peer.NewOTLPReceiver(t, nil, nil)
		sinks[a] = peer.NewSyslogSink(t, nil)
		tbl.Apps = append(tbl.Apps, routing.App{ID: fmt.Sprintf("ns%d/app", a),
			Tokens: []routing.Token{{Token: ownedAppToken(a), Source: "app", Collector: true}},
			Drains: []routing.Drain{
				{ID: fmt.Sprintf("ns%d/otlp", a), Token: fmt.Sprintf("d.%08d-3333-4333-8333-333333333333", a),
					URL: "otlp+http://" + strings.TrimPrefix(rvs[a].URL, "http://")},
				{ID: fmt.Sprintf("ns%d/syslog", a), Token: fmt.Sprintf("d.%08d-2222-4222-8222-222222222222", a),
					URL: "syslog://" + sinks[a].Addr}}})
	}
	rs, _ := startOwnerSet(t, tbl, 1)

	for r := range rs {
		for a := range apps {
			var b []byte
			for i := range per {
				b = wire.AppendFrame(b, fmt.Appendf(nil, "<190>1 2026-11-25T10:00:00.000000+00:00 host app web.1 - - r%d n%d", r, i))
			}
			resp, _ := post(t, rs[r].base+"/logs", ownedAppToken(a), string(b), map[string]string{wire.HeaderMsgCount: fmt.Sprint(per),
				wire.HeaderPod: fmt.Sprintf("web-%d", r), wire.HeaderNode: fmt.Sprintf("node-%d", r)})
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("POST /logs to %s = %d", rs[r].base, resp.StatusCode)
			}
		}
	}
	forwarded := 0
	for a := range apps {
		recs := rvs[a].WaitAccepted(t, len(rs)*per)
		if len(recs) != len(rs)*per {
			t.Errorf("app %d: %d OTLP records, want %d", a, len(recs), len(rs)*per)
		}
		for _, rec := range recs {
			var r, n int
			if _, err := fmt.Sscanf(rec.Body, "r%d n%d", &r, &n); err != nil {
				t.Fatalf("app %d: unexpected record %q", a, rec.Body)
			}
			if pod, node := rec.Resource["k8s.pod.name"], rec.Resource["k8s.node.name"]; pod != fmt.Sprintf("web-%d", r) || node != fmt.Sprintf("node-%d", r) {
				t.Errorf("app %d, line %q posted to router %d: pod %q, node %q; want web-%d, node-%d", a, rec.Body, r, pod, node, r, r)
			}
		}
		for _, req := range rvs[a].Requests() {
			if len(req.Header.Values("Kubeplex-Forward-Origins")) > 0 {
				t.Errorf("app %d: the forwarding hop's header reached the drain", a)
			}
		}
		for _, raw := range sinks[a].WaitFor(t, len(rs)*per) {
			if strings.Contains(string(raw.Text), "web-") || strings.Contains(fmt.Sprint(raw), "node-") {
				t.Errorf("app %d: syslog frame carries an origin: %+v", a, raw)
			}
		}
		for _, raw := range sinks[a].Raw() {
			if strings.Contains(string(raw), "node-") {
				t.Errorf("app %d: syslog frame carries an origin: %q", a, raw)
			}
		}
	}
	for _, r := range rs {
		for id, ds := range status(t, "http://"+r.admin).Drains {
			if strings.HasSuffix(id, "/otlp") {
				forwarded += int(ds.Forwarded)
			}
		}
	}
	// Two of every three replicas forward each drain's lines: the test covers the hop.
	if want := apps * (len(rs) - 1) * per; forwarded != want {
		t.Errorf("%d OTLP lines forwarded, want %d", forwarded, want)
	}
}
