package routing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func sample(apps int) *Table {
	const drainsPerApp = 2
	t := &Table{}
	for i := apps - 1; i >= 0; i-- { // reverse order: Seal must sort
		a := App{ID: fmt.Sprintf("ns/app-%05d", i), History: 1500,
			Tokens: []Token{{SHA256: HashToken(fmt.Sprintf("t.%d", i)), Source: "app"}}}
		for d := 0; d < drainsPerApp; d++ {
			a.Drains = append(a.Drains, Drain{ID: fmt.Sprintf("ns/d-%d-%d", i, d), Token: fmt.Sprintf("d.%d.%d", i, d),
				URL: "syslog://logs.example.com:514"})
		}
		t.Apps = append(t.Apps, a)
	}
	t.Seal()
	return t
}

func TestSealIsDeterministic(t *testing.T) {
	a, b := sample(5), sample(5)
	if a.Version == "" || a.Version != b.Version {
		t.Fatalf("versions %q %q", a.Version, b.Version)
	}
	if a.Apps[0].ID != "ns/app-00000" {
		t.Fatalf("apps not sorted: first is %q", a.Apps[0].ID)
	}
	c := sample(5)
	c.Apps[3].Drains[0].URL = "syslog://other:514"
	c.Seal()
	if c.Version == a.Version {
		t.Fatal("a content change kept the version")
	}
}

func TestSplitJoin(t *testing.T) {
	tests := []struct {
		name       string
		apps       int
		maxBytes   int
		wantShards int
	}{
		{name: "fits in one", apps: 10, maxBytes: 900 << 10, wantShards: 1},
		{name: "empty table", apps: 0, maxBytes: 1 << 10, wantShards: 1},
		{name: "ten thousand drains split", apps: 5000, maxBytes: 900 << 10, wantShards: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := sample(tt.apps)
			shards, err := Split(tbl, tt.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(shards) < tt.wantShards {
				t.Fatalf("%d shards, want at least %d", len(shards), tt.wantShards)
			}
			for i, s := range shards {
				if len(s) > tt.maxBytes {
					t.Fatalf("shard %d has %d bytes, limit %d", i, len(s), tt.maxBytes)
				}
			}
			if n, err := ShardCount(shards[0]); err != nil || n != len(shards) {
				t.Fatalf("ShardCount = %d, %v", n, err)
			}
			got, err := Join(shards)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != tbl.Version || len(got.Apps) != tt.apps {
				t.Fatalf("joined %d apps version %q, want %d %q", len(got.Apps), got.Version, tt.apps, tbl.Version)
			}
		})
	}
}

func TestJoinRefusesMixedVersions(t *testing.T) {
	a, err := Split(sample(5000), 900<<10)
	if err != nil {
		t.Fatal(err)
	}
	// The same table with one app's drain moved elsewhere: that app's shard differs.
	other := sample(5000)
	other.Apps[17].Drains[0].URL = "syslog://elsewhere.example.com:514"
	other.Seal()
	b, err := Split(other, 900<<10, len(a))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(a) {
		t.Fatalf("a one-drain change moved the table from %d to %d shards", len(a), len(b))
	}
	changed := -1
	for i := 1; i < len(a); i++ {
		if string(a[i]) != string(b[i]) {
			changed = i
		}
	}
	if changed < 0 {
		t.Skip("the changed app landed in shard 0; no other shard to mix")
	}
	mixed := slices.Clone(a)
	mixed[changed] = b[changed]
	if _, err := Join(mixed); !errors.Is(err, ErrShardsMismatch) {
		t.Fatalf("err = %v, want ErrShardsMismatch", err)
	}
	if _, err := Join(a[:1]); !errors.Is(err, ErrShardsMismatch) {
		t.Fatalf("missing shard: err = %v, want ErrShardsMismatch", err)
	}
	// Shard 0 of the new table with the old copies of the shards it did not change
	// is the new table: a reader keeps the shards whose digest it already has.
	reuse := slices.Clone(a)
	reuse[0], reuse[changed] = b[0], b[changed]
	got, err := Join(reuse)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != other.Version || len(got.Apps) != len(other.Apps) || got.Apps[17].Drains[0].URL != "syslog://elsewhere.example.com:514" {
		t.Fatalf("joined version %q with %d apps, want %q with %d", got.Version, len(got.Apps), other.Version, len(other.Apps))
	}
}

// TestSplitRewritesOnlyTheChangedShard: adding one app to a table of 60,000 apps
// changes shard 0 (version and digests) and the one shard the app lands in; the
// shard count grows with the table, past the 16 the first layout allowed.
func TestSplitRewritesOnlyTheChangedShard(t *testing.T) {
	const maxBytes = 900 << 10
	big := sample(60000)
	before, err := Split(big, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) <= 16 {
		t.Fatalf("%d shards for 60,000 apps; this test wants a table past 16 shards", len(before))
	}
	grown := sample(60001)
	after, err := Split(grown, maxBytes, len(before))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("one more app changed the shard count from %d to %d", len(before), len(after))
	}
	var changed []int
	for i := range after {
		if len(after[i]) > maxBytes {
			t.Errorf("shard %d has %d bytes, limit %d", i, len(after[i]), maxBytes)
		}
		if string(after[i]) != string(before[i]) {
			changed = append(changed, i)
		}
	}
	if len(changed) > 2 || changed[0] != 0 {
		t.Fatalf("one added app changed shards %v; want shard 0 and at most one other", changed)
	}
	got, err := Join(after)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != grown.Version || len(got.Apps) != 60001 || !slices.IsSortedFunc(got.Apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatalf("joined %d apps (sorted: %v), version %q want %q", len(got.Apps),
			slices.IsSortedFunc(got.Apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) }), got.Version, grown.Version)
	}
	// Without the stored count the number is chosen afresh, and the shards still fit.
	fresh, err := Split(grown, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range fresh {
		if len(b) > maxBytes {
			t.Errorf("fresh split: shard %d has %d bytes", i, len(b))
		}
	}
	// A count far above what the table needs is given up (a table that shrank).
	small, err := Split(sample(100), maxBytes, len(before))
	if err != nil {
		t.Fatal(err)
	}
	if len(small) != 1 {
		t.Fatalf("100 apps kept %d shards", len(small))
	}
}

// TestShardOfMovesFewApps: the jump hash keeps an app's shard when the count grows
// by one unless the app moves to the new shard, and spreads apps evenly.
func TestShardOfMovesFewApps(t *testing.T) {
	const apps, n = 20000, 20
	moved := 0
	count := make([]int, n+1)
	for i := range apps {
		id := fmt.Sprintf("team-%d/app-%d", i/5, i%5)
		a, b := shardOf(id, n), shardOf(id, n+1)
		if a < 0 || a >= n || b < 0 || b > n {
			t.Fatalf("shardOf out of range: %d of %d, %d of %d", a, n, b, n+1)
		}
		if a != b {
			if b != n {
				t.Fatalf("%s moved from %d to %d, not to the new shard", id, a, b)
			}
			moved++
		}
		count[b]++
	}
	// 1/(n+1) of the apps are expected to move: allow twice that.
	if moved > 2*apps/(n+1) {
		t.Errorf("%d of %d apps moved when the count grew from %d to %d", moved, apps, n, n+1)
	}
	for i, c := range count {
		if c < apps/(n+1)/2 || c > 2*apps/(n+1) {
			t.Errorf("shard %d holds %d apps of %d (even: %d)", i, c, apps, apps/(n+1))
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		table   Table
		wantErr bool
	}{
		{name: "ok", table: Table{Apps: []App{{ID: "a/b", Tokens: []Token{{Token: "t.1", Source: "app"}}}}}},
		{name: "repeated app", table: Table{Apps: []App{{ID: "a/b"}, {ID: "a/b"}}}, wantErr: true},
		{name: "empty app id", table: Table{Apps: []App{{}}}, wantErr: true},
		{name: "token without source", table: Table{Apps: []App{{ID: "a/b", Tokens: []Token{{Token: "t.1"}}}}}, wantErr: true},
		{name: "token without secret", table: Table{Apps: []App{{ID: "a/b", Tokens: []Token{{Source: "app"}}}}}, wantErr: true},
		{name: "session key", table: Table{SessionKeys: []SessionKey{{ID: "k1", Key: "abababababababababababababababababababababababababababababababab"}}}},
		{name: "session key not hex", table: Table{SessionKeys: []SessionKey{{ID: "k1", Key: "zz"}}}, wantErr: true},
		{name: "session key short", table: Table{SessionKeys: []SessionKey{{ID: "k1", Key: "abab"}}}, wantErr: true},
		{name: "session key without id", table: Table{SessionKeys: []SessionKey{{Key: "abababababababababababababababababababababababababababababababab"}}}, wantErr: true},
		{name: "repeated session key", table: Table{SessionKeys: []SessionKey{{ID: "k1", Key: "abababababababababababababababababababababababababababababababab"}, {ID: "k1", Key: "abababababababababababababababababababababababababababababababab"}}}, wantErr: true},
		{name: "repeated drain", table: Table{Apps: []App{{ID: "a/b", Drains: []Drain{{ID: "a/d"}}}, {ID: "a/c", Drains: []Drain{{ID: "a/d"}}}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.table.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestTokenMatches(t *testing.T) {
	d := HashToken("t.secret")
	if !TokenMatches("t.secret", d) || TokenMatches("t.other", d) || TokenMatches("", d) {
		t.Fatal("TokenMatches is wrong")
	}
	tok := Token{Token: "t.secret"}
	if tok.Digest() != d {
		t.Fatal("Digest of a plain token differs from HashToken")
	}
}

func TestSessionKeysTravelInShardZeroAndChangeVersion(t *testing.T) {
	apps := make([]App, 0, 50)
	for i := range 50 {
		apps = append(apps, App{ID: fmt.Sprintf("ns/app-%02d", i), Hosts: []string{strings.Repeat("h", 100)}})
	}
	plain := &Table{Apps: slices.Clone(apps)}
	plain.Seal()
	keyed := &Table{Apps: slices.Clone(apps), SessionKeys: []SessionKey{{ID: "k2", Key: strings.Repeat("cd", 32)}, {ID: "k1", Key: strings.Repeat("ab", 32)}}}
	keyed.Seal()
	if plain.Version == keyed.Version {
		t.Fatal("session keys do not change the version")
	}
	shards, err := Split(keyed, 2000)
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) < 2 {
		t.Fatalf("want several shards, got %d", len(shards))
	}
	for i, b := range shards {
		if len(b) > 2000 {
			t.Errorf("shard %d is %d bytes, limit 2000", i, len(b))
		}
		if has := strings.Contains(string(b), "sessionKeys"); has != (i == 0) {
			t.Errorf("shard %d carries session keys: %v", i, has)
		}
	}
	whole, err := Join(shards)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole.SessionKeys, keyed.SessionKeys) || len(whole.Apps) != len(apps) {
		t.Fatalf("joined table has keys %v and %d apps", whole.SessionKeys, len(whole.Apps))
	}
}

// FuzzJoin: shards as a reader gets them from Secrets, however corrupt, decode to an
// error or to a valid table, never a panic; a shard count past MaxShards is refused
// by the head alone; what joins, once sealed, survives a Split and Join unchanged.
func FuzzJoin(f *testing.F) {
	for _, n := range []int{0, 3, 400} {
		shards, err := Split(sample(n), 16<<10)
		if err != nil {
			f.Fatal(err)
		}
		for len(shards) < 2 {
			shards = append(shards, []byte(`{}`))
		}
		f.Add(shards[0], shards[1])
	}
	f.Add([]byte(`{"shards":2000000000,"digests":["a"]}`), []byte(`{"shard":1}`))
	f.Add([]byte(`{"shards":-5,"apps":[{"id":"a","tokens":[{"source":"app","token":"t"}]}]}`), []byte(`[]`))
	f.Fuzz(func(t *testing.T, s0, s1 []byte) {
		if h, err := ReadHead(s0); err == nil && (h.Shards < 1 || h.Shards > MaxShards) {
			t.Fatalf("head of %d shards accepted", h.Shards)
		}
		_, _ = Decode(s0)
		for _, shards := range [][][]byte{{s0}, {s0, s1}} {
			tbl, err := Join(shards)
			if err != nil {
				continue
			}
			if err := tbl.Validate(); err != nil {
				t.Fatalf("Join returned a table that does not validate: %v", err)
			}
			tbl.Seal() // canonical order: what a writer stores
			want, err := json.Marshal(tbl.Apps)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Split(tbl, 1<<20)
			if err != nil {
				continue // an app too big for one shard: refused, not cut
			}
			back, err := Join(again)
			if err != nil {
				t.Fatalf("a table Join took does not join again after Split: %v", err)
			}
			if got, _ := json.Marshal(back.Apps); !bytes.Equal(got, want) {
				t.Fatalf("apps changed through Seal/Split/Join:\n%s\n%s", want, got)
			}
		}
	})
}
