package owner

import (
	"fmt"
	"slices"
	"testing"
)

func members(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("http://10.0.0.%d:8080", i+1)
	}
	return out
}

func drainIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ns-%d/drain-%d", i%97, i)
	}
	return out
}

// TestOwnersAgree: every member computes the same owners from the same list (in any
// order), each drain has exactly k, and Owns agrees with Owners.
func TestOwnersAgree(t *testing.T) {
	ms := members(5)
	for _, k := range []int{1, 2, 5, 7, 0} {
		want := min(k, len(ms))
		if k <= 0 {
			want = len(ms)
		}
		sets := make([]*Set, len(ms))
		for i, m := range ms {
			others := slices.Clone(ms)
			slices.Reverse(others)
			sets[i] = New(m, others, k)
		}
		for _, id := range drainIDs(2000) {
			owners := sets[0].Owners(id)
			if len(owners) != want {
				t.Fatalf("k=%d: %s has %d owners, want %d", k, id, len(owners), want)
			}
			n := 0
			for i, s := range sets {
				if !slices.Equal(s.Owners(id), owners) {
					t.Fatalf("k=%d: members disagree on %s's owners", k, id)
				}
				if s.Owns(id) {
					n++
					if !slices.Contains(owners, ms[i]) {
						t.Fatalf("k=%d: %s owns %s but is not among %v", k, ms[i], id, owners)
					}
				}
			}
			if n != want {
				t.Fatalf("k=%d: %d members own %s, want %d", k, n, id, want)
			}
		}
	}
}

// TestOwnersSpread: with k=1 over 3 members each gets about a third of the drains.
func TestOwnersSpread(t *testing.T) {
	ms := members(3)
	s := New(ms[0], ms, 1)
	count := map[string]int{}
	ids := drainIDs(30000)
	for _, id := range ids {
		count[s.Owners(id)[0]]++
	}
	for _, m := range ms {
		if c := count[m]; c < 9000 || c > 11000 {
			t.Errorf("%s owns %d of %d drains, want about a third", m, c, len(ids))
		}
	}
}

// TestMembershipChangeMovesFew: a member joining takes drains only from the others
// (no drain moves between two members that stayed) and about k/N of them; a member
// leaving gives away only its own.
func TestMembershipChangeMovesFew(t *testing.T) {
	ids := drainIDs(20000)
	before := New(members(4)[0], members(4), 2)
	after := New(members(4)[0], members(5), 2) // members(5) is members(4) plus one
	joined := members(5)[4]
	moved := 0
	for _, id := range ids {
		b, a := before.Owners(id), after.Owners(id)
		for _, o := range a {
			if !slices.Contains(b, o) {
				moved++
				if o != joined {
					t.Fatalf("%s moved to %s, which was a member before", id, o)
				}
			}
		}
	}
	// Expected 2/5 of the drains gain the new member as an owner.
	if f := float64(moved) / float64(len(ids)); f < 0.35 || f > 0.45 {
		t.Errorf("%.2f of the drains moved on a join to 5 members with k=2, want about 0.40", f)
	}
	// And back: the leaving member's drains go elsewhere, the rest keep their owners.
	for _, id := range ids {
		b, a := after.Owners(id), before.Owners(id)
		if !slices.Contains(b, joined) && !slices.Equal(b, a) {
			t.Fatalf("%s changed owners %v → %v though the leaving member did not own it", id, b, a)
		}
	}
}

func BenchmarkOwns(b *testing.B) {
	s := New(members(10)[3], members(10), 2)
	ids := drainIDs(1024)
	b.ReportAllocs()
	for i := range b.N {
		s.Owns(ids[i%len(ids)])
	}
}
