package routing

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// parts builds a table of three shards by hand: shard 0 (no apps) and two of apps,
// each app given by ID with one drain named after it.
func parts(shard1, shard2 []string) []*Table {
	app := func(id string) App {
		return App{ID: id, Tokens: []Token{{Token: "t." + id, Source: "app"}},
			Drains: []Drain{{ID: "d/" + id, Token: "d." + id, URL: "syslog://logs.example.com:514"}}}
	}
	out := make([]*Table, 0, 3)
	out = append(out, &Table{Version: "v", Shards: 3})
	for i, ids := range [][]string{shard1, shard2} {
		p := &Table{Version: "v", Shard: i + 1, Shards: 3}
		for _, id := range ids {
			p.Apps = append(p.Apps, app(id))
		}
		out = append(out, p)
	}
	return out
}

func ids(t *Table) []string {
	out := make([]string, 0, len(t.Apps))
	for _, a := range t.Apps {
		out = append(out, a.ID)
	}
	return out
}

// TestAssemblerMatchesAssemble: an Assembler given, step by step, the shards a reader
// holds (the unchanged ones passed again, the changed ones decoded anew) returns what
// a fresh Assemble of the same shards returns, and refuses what it refuses; after a
// refusal it checks everything again.
func TestAssemblerMatchesAssemble(t *testing.T) {
	type step struct {
		name    string
		change  int // the shard decoded anew (0: shard 0 only)
		apps    []string
		drainOf string // with drainID: give this app's drain another ID
		drainID string
		wantErr string
	}
	steps := []step{
		{name: "first", change: 1, apps: []string{"a/1", "a/3", "a/5"}},
		{name: "app added to shard 1", change: 1, apps: []string{"a/0", "a/1", "a/3", "a/5"}},
		{name: "shard 0 only", change: 0},
		{name: "app added to shard 2", change: 2, apps: []string{"a/2", "a/4", "a/6"}},
		{name: "app removed from shard 2", change: 2, apps: []string{"a/2", "a/6"}},
		{name: "app moved to shard 1", change: 1, apps: []string{"a/0", "a/1", "a/3", "a/4", "a/5"}},
		{name: "app in both shards", change: 1, apps: []string{"a/0", "a/1", "a/2", "a/3"}, wantErr: `a/2" empty or repeated`},
		{name: "back to good", change: 1, apps: []string{"a/0", "a/1", "a/3"}},
		{name: "drain ID of another shard's drain", change: 1, apps: []string{"a/0", "a/1", "a/3"},
			drainOf: "a/1", drainID: "d/a/6", wantErr: `drain id "d/a/6"`},
		{name: "drain ID freed by the same change", change: 1, apps: []string{"a/0", "a/1", "a/3"}},
		{name: "apps out of order", change: 1, apps: []string{"a/3", "a/0", "a/1"}},
		{name: "last app of the table", change: 2, apps: []string{"a/2", "a/6", "z/9"}},
		{name: "first app of the table", change: 1, apps: []string{"0/0", "a/0", "a/1", "a/3"}},
		{name: "repeated within a shard", change: 1, apps: []string{"a/0", "a/0"}, wantErr: `a/0" empty or repeated`},
	}
	var as Assembler
	held := parts(nil, []string{"a/2", "a/4", "a/6"})
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			next := slices.Clone(held)
			next[0] = &Table{Version: "v", Shards: 3} // a new shard 0 with every change
			if s.change > 0 {
				p := parts(s.apps, s.apps)[s.change]
				for i := range p.Apps {
					if p.Apps[i].ID == s.drainOf {
						p.Apps[i].Drains[0].ID = s.drainID
					}
				}
				next[s.change] = p
			}
			got, err := as.Assemble(next)
			want, wantErr := Assemble(next)
			if s.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), s.wantErr) {
					t.Fatalf("err = %v, want %s", err, s.wantErr)
				}
				if wantErr == nil {
					t.Fatal("Assemble took what the Assembler refused")
				}
				return
			}
			if err != nil || wantErr != nil {
				t.Fatalf("err = %v, Assemble's %v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("assembled %v, Assemble gives %v", ids(got), ids(want))
			}
			if !slices.IsSorted(ids(got)) {
				t.Fatalf("apps not in ID order: %v", ids(got))
			}
			held = next
		})
	}
}

// TestAssemblerChecksNewShardsAgainstHeldOnes: a shard the Assembler has not seen is
// checked against the ones it has (an app or drain ID already there is refused), and
// a held shard passed twice is refused rather than taken as two.
func TestAssemblerChecksNewShardsAgainstHeldOnes(t *testing.T) {
	var as Assembler
	held := parts([]string{"a/1"}, []string{"a/2"})
	if _, err := as.Assemble(held); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*Table{
		"app": parts([]string{"a/2"}, nil)[1],
		"drain": func() *Table {
			p := parts([]string{"a/3"}, nil)[1]
			p.Apps[0].Drains[0].ID = "d/a/2"
			return p
		}(),
		"token without source": func() *Table {
			p := parts([]string{"a/3"}, nil)[1]
			p.Apps[0].Tokens[0].Source = ""
			return p
		}(),
	} {
		if _, err := as.Assemble([]*Table{held[0], p, held[2]}); err == nil {
			t.Errorf("%s: a new shard repeating a held one's was taken", name)
		}
		if _, err := as.Assemble(held); err != nil {
			t.Fatalf("%s: held shards after a refusal: %v", name, err)
		}
	}
	twice := &Table{Version: "v", Shard: 1, Shards: 3}
	if _, err := as.Assemble([]*Table{held[0], twice, twice}); err == nil {
		t.Error("one shard passed as two was taken")
	}
}

// BenchmarkAssembleOneShard is the Assembler's work for a one-app change in a table
// of 25,000 apps over 32 shards.
func BenchmarkAssembleOneShard(b *testing.B) {
	const n, m = 25000, 32
	ps := []*Table{{Version: "v", Shards: m + 1}}
	for i := 1; i <= m; i++ {
		ps = append(ps, &Table{Version: "v", Shard: i, Shards: m + 1})
	}
	for i := range n {
		id := fmt.Sprintf("team-%05d/app-%d", i/5, i%5)
		p := ps[1+shardOf(id, m)]
		p.Apps = append(p.Apps, App{ID: id, Drains: []Drain{{ID: id + "/d0"}, {ID: id + "/d1"}}})
	}
	var as Assembler
	if _, err := as.Assemble(ps); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p := *ps[7]
		ps[7] = &p
		if _, err := as.Assemble(ps); err != nil {
			b.Fatal(err)
		}
	}
}
