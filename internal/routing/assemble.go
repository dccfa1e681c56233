package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Assembler is Assemble for a reader that keeps the shards it decoded and passes
// them again while their digest is unchanged (router/tablesource): a one-drain change
// brings one new shard of apps among tens, and checking every app and drain of the
// table again, as a fresh Assemble must, was most of a router's work for it.
//
// What a shard says alone (its apps in ID order, each app valid, app and drain IDs
// unique within the shard) is checked when the Assembler first sees it; what spans
// shards (an app or drain ID in two of them) is checked against what the last
// assembly held, for the new shards only. So a shard passed again must be the same,
// unmodified *Table. The zero value is ready; it is not safe for concurrent use.
type Assembler struct {
	// seen holds the parts of the last successful assembly, each checked alone.
	seen map[*Table]partFacts
	// drains maps every drain ID of those parts to its part.
	drains map[string]*Table
	// apps is the order of their apps, by ID.
	apps []appRef
}

type partFacts struct {
	// sorted: the part's apps are in strictly increasing ID order, so the table's
	// order is a merge of the parts'.
	sorted bool
}

// Assemble joins decoded shards (shard 0 first) into one table, apps in ID order:
// a reader that keeps the shards it decoded before decodes only the changed ones.
// The parts are not modified.
func Assemble(parts []*Table) (*Table, error) {
	var as Assembler
	return as.Assemble(parts)
}

// Assemble is the package's Assemble, checking only the parts it has not seen.
func (as *Assembler) Assemble(parts []*Table) (*Table, error) {
	if len(parts) == 0 {
		return nil, errors.New("join routing table: no shards")
	}
	head := parts[0]
	n := max(head.Shards, 1)
	if n > MaxShards {
		return nil, fmt.Errorf("join routing table: %d shards, at most %d", n, MaxShards)
	}
	if n != len(parts) {
		return nil, fmt.Errorf("join routing table: %w: shard 0 wants %d shards, have %d", ErrShardsMismatch, n, len(parts))
	}
	if head.Digests != nil && len(head.Digests) != n {
		return nil, fmt.Errorf("join routing table: shard 0 lists %d digests for %d shards", len(head.Digests), n)
	}
	for i, t := range parts {
		if i > 0 && (t.Shard != i ||
			(head.Digests != nil && t.Digest != head.Digests[i]) ||
			(head.Digests == nil && t.Version != head.Version)) {
			return nil, fmt.Errorf("join routing table: %w: shard %d", ErrShardsMismatch, i)
		}
	}
	whole, err := as.assemble(parts)
	if err != nil {
		// Whatever was recorded for this attempt may be half done: the next one
		// checks every part again.
		as.seen, as.drains, as.apps = nil, nil, nil
		return nil, err
	}
	return whole, nil
}

func (as *Assembler) assemble(parts []*Table) (*Table, error) {
	head := parts[0]
	seen := make(map[*Table]partFacts, len(parts))
	var fresh []*Table
	for i, p := range parts {
		if _, dup := seen[p]; dup {
			// The same part twice would pass the cross-shard checks below.
			return nil, fmt.Errorf("join routing table: shard %d given twice", i)
		}
		f, ok := as.seen[p]
		if !ok {
			var err error
			if f, err = checkPart(p, i == 0); err != nil {
				return nil, err
			}
			fresh = append(fresh, p)
		}
		seen[p] = f
	}
	if as.drains == nil {
		as.drains = map[string]*Table{}
	}
	// Drains of parts that left: their IDs are free for the new parts.
	for p := range as.seen {
		if _, ok := seen[p]; ok {
			continue
		}
		for i := range p.Apps {
			for j := range p.Apps[i].Drains {
				if id := p.Apps[i].Drains[j].ID; as.drains[id] == p {
					delete(as.drains, id)
				}
			}
		}
	}
	for _, p := range fresh {
		for i := range p.Apps {
			for j := range p.Apps[i].Drains {
				id := p.Apps[i].Drains[j].ID
				if o, ok := as.drains[id]; ok && o != p {
					if _, held := seen[o]; held {
						return nil, fmt.Errorf("validate routing table: drain id %q empty or repeated", id)
					}
				}
				as.drains[id] = p
			}
		}
	}
	whole := &Table{Version: head.Version, Shards: 1, SessionKeys: head.SessionKeys, Platform: head.Platform}
	order, err := as.order(parts, seen, fresh)
	if err != nil {
		return nil, err
	}
	whole.Apps = make([]App, len(order))
	for i, r := range order {
		whole.Apps[i] = r.part.Apps[r.i]
	}
	as.seen, as.apps = seen, order
	return whole, nil
}

// checkPart checks what a part says alone: Validate of its apps (and of the session
// keys and platform credentials when it is shard 0, the only one they are taken from).
func checkPart(p *Table, head bool) (partFacts, error) {
	alone := Table{Apps: p.Apps}
	if head {
		alone.SessionKeys, alone.Platform = p.SessionKeys, p.Platform
	}
	if err := alone.Validate(); err != nil {
		return partFacts{}, err
	}
	sorted := true
	for i := 1; i < len(p.Apps) && sorted; i++ {
		sorted = p.Apps[i-1].ID < p.Apps[i].ID
	}
	return partFacts{sorted: sorted}, nil
}

// appRef is an app of a part.
type appRef struct {
	part *Table
	i    int
}

func (r appRef) id() string { return r.part.Apps[r.i].ID }

// order returns the apps of parts in ID order, refusing an app ID that two parts
// hold. When the last assembly's order is known, the fresh parts' apps are spliced
// into it (a copy of the table's order and a binary search per new app); otherwise
// the parts are merged, or sorted together when one is out of order.
func (as *Assembler) order(parts []*Table, facts map[*Table]partFacts, fresh []*Table) ([]appRef, error) {
	size := 0
	sorted := true
	for _, p := range parts {
		size += len(p.Apps)
		sorted = sorted && facts[p].sorted
	}
	if !sorted {
		out := make([]appRef, 0, size)
		for _, p := range parts {
			for i := range p.Apps {
				out = append(out, appRef{p, i})
			}
		}
		slices.SortFunc(out, func(a, b appRef) int { return strings.Compare(a.id(), b.id()) })
		return out, distinct(out)
	}
	if as.apps == nil || len(fresh) > len(parts)/2 {
		out := mergeParts(parts, size)
		return out, distinct(out)
	}
	add := mergeParts(fresh, 0)
	if err := distinct(add); err != nil {
		return nil, err
	}
	// Parts of the last order that are not in this one (the fresh parts replace them).
	var left []*Table
	for p := range as.seen {
		if _, ok := facts[p]; !ok {
			left = append(left, p)
		}
	}
	prev := as.apps
	out := make([]appRef, 0, size)
	keep := func(to int) {
		for _, r := range prev[:to] {
			if !slices.Contains(left, r.part) {
				out = append(out, r)
			}
		}
		prev = prev[to:]
	}
	for _, r := range add {
		id := r.id()
		j, found := slices.BinarySearchFunc(prev, id, func(e appRef, id string) int { return strings.Compare(e.id(), id) })
		if found && !slices.Contains(left, prev[j].part) {
			return nil, fmt.Errorf("validate routing table: app id %q empty or repeated", id)
		}
		keep(j)
		out = append(out, r)
	}
	keep(len(prev))
	return out, nil
}

// distinct refuses an app ID that follows itself in sorted order.
func distinct(order []appRef) error {
	for i := 1; i < len(order); i++ {
		if order[i].id() == order[i-1].id() {
			return fmt.Errorf("validate routing table: app id %q empty or repeated", order[i].id())
		}
	}
	return nil
}

// mergeParts merges the apps of parts, each in ID order, in O(apps × log parts)
// comparisons.
func mergeParts(parts []*Table, size int) []appRef {
	out := make([]appRef, 0, size)
	// A binary min-heap of the parts' next apps.
	h := make([]appRef, 0, len(parts))
	for _, p := range parts {
		if len(p.Apps) > 0 {
			h = append(h, appRef{p, 0})
		}
	}
	less := func(i, j int) bool { return h[i].id() < h[j].id() }
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && less(c+1, c) {
				c++
			}
			if !less(c, i) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		out = append(out, h[0])
		if h[0].i++; h[0].i == len(h[0].part.Apps) {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
	return out
}
