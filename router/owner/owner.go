// Package owner picks which router replicas own a drain, by rendezvous (highest
// random weight) hashing: every replica that sees the same member list computes the
// same owners for a drain without talking to the others, each drain has
// min(k, len(members)) owners, and a member joining or leaving moves only the drains
// whose owners it is or becomes (about k/N of them), so a rolling restart does not
// reshuffle every drain.
package owner

import (
	"slices"
)

// Set is a member list and the number of owners per drain. It is immutable.
type Set struct {
	self    string
	members []string
	// pre[i] is the hash state after members[i] and the separator; selfPre is self's.
	pre     []uint64
	selfPre uint64
	k       int
}

// New returns the set of members (self is added when missing; order and repeats do
// not matter) in which each drain has k owners. k ≤ 0 means every member owns every
// drain.
func New(self string, members []string, k int) *Set {
	m := append(slices.Clone(members), self)
	slices.Sort(m)
	m = slices.Compact(m)
	if k <= 0 || k > len(m) {
		k = len(m)
	}
	s := &Set{self: self, members: m, k: k, pre: make([]uint64, len(m)), selfPre: prefix(self)}
	for i := range m {
		s.pre[i] = prefix(m[i])
	}
	return s
}

// Members returns the sorted member list (self included).
func (s *Set) Members() []string { return slices.Clone(s.members) }

// K returns the owners per drain.
func (s *Set) K() int { return s.k }

// Owners returns the k owners of key, highest weight first.
func (s *Set) Owners(key string) []string {
	if s.k == len(s.members) {
		return s.Members()
	}
	type scored struct {
		w uint64
		m string
	}
	top := make([]scored, 0, s.k+1)
	for j, m := range s.members {
		w := weight(s.pre[j], key)
		i, _ := slices.BinarySearchFunc(top, w, func(a scored, w uint64) int {
			if a.w >= w { // an equal weight stays ahead: the smaller name, as in Owns
				return -1
			}
			return 1
		})
		if i < s.k {
			top = slices.Insert(top, i, scored{w, m})
			if len(top) > s.k {
				top = top[:s.k]
			}
		}
	}
	out := make([]string, len(top))
	for i, t := range top {
		out[i] = t.m
	}
	return out
}

// Owns reports whether self is one of key's owners. It allocates nothing: the
// router asks it for every drain whenever the member list or the table changes.
func (s *Set) Owns(key string) bool {
	if s.k == len(s.members) {
		return true
	}
	mine := weight(s.selfPre, key)
	above := 0
	for j, m := range s.members {
		if m == s.self {
			continue
		}
		// Ties (a 64-bit collision) go to the smaller name, as Owners' stable order.
		if w := weight(s.pre[j], key); w > mine || (w == mine && m < s.self) {
			above++
			if above >= s.k {
				return false
			}
		}
	}
	return true
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// prefix is the FNV-1a state after a member's name and a separator byte (no URL
// holds 0xff), computed once per member.
func prefix(member string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(member); i++ {
		h ^= uint64(member[i])
		h *= fnvPrime
	}
	h ^= 0xff
	h *= fnvPrime
	return h
}

// weight is a member's score for key: FNV-1a over the member's prefix state and the
// key, then a 64-bit finalizer (FNV alone moves too few bits for keys that differ
// in their last bytes).
func weight(pre uint64, key string) uint64 {
	h := pre
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= fnvPrime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
