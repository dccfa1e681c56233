package routes

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// Change is a line about one app that a new routing table makes true: a drain added
// or removed, a host gained or lost, an ingest token rotated or its predecessor retired. The manager's
// leader writes each into the app's stream as kubeplex[router], once.
type Change struct {
	App  string
	Text string
	// Drain is the drain's ID when the line announces it (added): the line should
	// be posted once the routers run that drain, so that it sees its own line.
	Drain string
}

// Changes compares the table the routers run (old, nil when there was none) with
// the next one. Apps that are new or gone get no lines about their own tokens (an
// app that is gone has no stream left to write to).
func Changes(old, next *routing.Table) []Change {
	before := map[string]*routing.App{}
	if old != nil {
		for i := range old.Apps {
			before[old.Apps[i].ID] = &old.Apps[i]
		}
	}
	var out []Change
	for i := range next.Apps {
		a := &next.Apps[i]
		prev := before[a.ID]
		had := map[string]routing.Drain{}
		if prev != nil {
			for _, d := range prev.Drains {
				had[d.ID] = d
			}
		}
		for _, d := range a.Drains {
			p, ok := had[d.ID]
			delete(had, d.ID)
			switch {
			case !ok:
				out = append(out, Change{a.ID, fmt.Sprintf("Drain %s added (%s)", d.Token, redactedURL(d.URL)), d.ID})
			case p.Token != d.Token:
				out = append(out, Change{App: a.ID, Text: fmt.Sprintf("Drain %s removed", p.Token)},
					Change{a.ID, fmt.Sprintf("Drain %s added (%s)", d.Token, redactedURL(d.URL)), d.ID})
			case p.URL != d.URL:
				out = append(out, Change{App: a.ID, Text: fmt.Sprintf("Drain %s now delivers to %s", d.Token, redactedURL(d.URL))})
			}
		}
		removed := make([]routing.Drain, 0, len(had))
		for _, d := range had {
			removed = append(removed, d)
		}
		slices.SortFunc(removed, func(x, y routing.Drain) int { return strings.Compare(x.ID, y.ID) })
		for _, d := range removed {
			out = append(out, Change{App: a.ID, Text: fmt.Sprintf("Drain %s removed", d.Token)})
		}
		if prev != nil {
			// Hosts: a host leaves the entry when the app drops it or when another app
			// claims it too (then it goes to neither, Render).
			for _, h := range a.Hosts {
				if !slices.Contains(prev.Hosts, h) {
					out = append(out, Change{App: a.ID, Text: "Host " + h + " now routes its load-balancer lines here"})
				}
			}
			for _, h := range prev.Hosts {
				if !slices.Contains(a.Hosts, h) {
					out = append(out, Change{App: a.ID,
						Text: "Host " + h + " no longer routes here (removed from spec.hosts, or claimed by another LogApp too)"})
				}
			}
		}
		if prev != nil {
			wasGrace, isGrace := graceEnd(prev.Tokens), graceEnd(a.Tokens)
			switch {
			case isGrace != nil && (wasGrace == nil || !wasGrace.Equal(*isGrace)):
				out = append(out, Change{App: a.ID, Text: "Ingest token rotated; the previous token stays valid until " +
					isGrace.UTC().Format(time.RFC3339)})
			case isGrace == nil && wasGrace != nil:
				out = append(out, Change{App: a.ID, Text: "Previous ingest token retired"})
			}
		}
	}
	return out
}

// graceEnd is when the app's rotated-out token stops working, nil when it has none.
func graceEnd(toks []routing.Token) *time.Time {
	for _, t := range toks {
		if t.NotAfter != nil {
			return t.NotAfter
		}
	}
	return nil
}

// redactedURL keeps scheme, host and port: a path or query may hold a key.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "destination not shown"
	}
	return u.Scheme + "://" + u.Host
}
