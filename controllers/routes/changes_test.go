package routes

import (
	"strings"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// TestChanges: the lines a new table makes true, per app (destinations without
// credentials, path or query), and none for an unchanged table.
func TestChanges(t *testing.T) {
	grace := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	old := &routing.Table{Apps: []routing.App{{ID: "shop/web", Hosts: []string{"a.example.com", "b.example.com"},
		Tokens: []routing.Token{{SHA256: "1", Source: "app"}},
		Drains: []routing.Drain{{ID: "shop/one", Token: "d.1", URL: "syslog://logs.example.com:514"},
			{ID: "shop/two", Token: "d.2", URL: "https://u:p@x.example.com/in?key=k"}}}}}
	next := &routing.Table{Apps: []routing.App{{ID: "shop/web", Hosts: []string{"b.example.com", "c.example.com"},
		Tokens: []routing.Token{{SHA256: "2", Source: "app"}, {SHA256: "1", Source: "app", NotAfter: &grace}},
		Drains: []routing.Drain{{ID: "shop/one", Token: "d.1", URL: "syslog+tls://logs.example.com:6514"},
			{ID: "shop/three", Token: "d.3", URL: "https://y.example.com/path?secret=s"}}},
		{ID: "shop/new", Drains: []routing.Drain{{ID: "shop/n", Token: "d.n", URL: "syslog://n.example.com:514"}}}}}
	changes := Changes(old, next)
	got := make([]string, 0, len(changes))
	for _, c := range changes {
		got = append(got, c.App+" "+c.Text)
	}
	want := []string{
		"shop/web Drain d.1 now delivers to syslog+tls://logs.example.com:6514",
		"shop/web Drain d.3 added (https://y.example.com)",
		"shop/web Drain d.2 removed",
		"shop/web Host c.example.com now routes its load-balancer lines here",
		"shop/web Host a.example.com no longer routes here (removed from spec.hosts, or claimed by another LogApp too)",
		"shop/web Ingest token rotated; the previous token stays valid until 2026-11-25T12:00:00Z",
		"shop/new Drain d.n added (syslog://n.example.com:514)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := Changes(next, next); len(c) != 0 {
		t.Errorf("unchanged table: %v", c)
	}
	retired := &routing.Table{Apps: []routing.App{{ID: "shop/web", Hosts: next.Apps[0].Hosts, Drains: next.Apps[0].Drains,
		Tokens: []routing.Token{{SHA256: "2", Source: "app"}}}, next.Apps[1]}}
	if c := Changes(next, retired); len(c) != 1 || c[0].Text != "Previous ingest token retired" {
		t.Errorf("retired: %v", c)
	}
}
