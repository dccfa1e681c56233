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
	"github.com/kubeplex/kubeplex/router"
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
	rs := startRouterSet(t, 3, tbl, "--drain-owners", "2", "--self-url", "{self}")
	all := make([]string, 0, len(rs))
	for _, r := range rs {
		all = append(all, r.base)
	}
	slices.Sort(all)

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
