package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
)

// ShardName returns the Secret name of shard i: the base name for shard 0, so an
// unsplit table lives in one Secret with the expected name, and "<base>-<i>" after.
func ShardName(base string, i int) string {
	if i == 0 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i)
}

// ShardFill is how full Split aims to make shards on average when it picks their
// number: apps land in shards by hash, so shards differ in size, and the headroom
// lets a table grow a while before the number (and so every shard) has to change.
const ShardFill = 0.7

// Split encodes a sealed table into shards of at most maxBytes each (JSON), keeping
// every app whole. A table that fits in one is one shard. A bigger one is cut into
// shard 0, which carries no apps, only the table version, the session keys, the
// platform credentials and every shard's digest, and shards 1…m, each carrying its
// apps and their digest: an app's shard is a jump consistent hash of its ID over m.
// Shard 0 is the one routers watch, so each change sends them a few hundred bytes and
// they read only the shards whose digest changed; writers store it last, so a router
// that sees a new version there finds every shard it names already written.
//
// m is picked so that shards are about ShardFill full. prevShards is how many shards
// the stored table has (0: none): that number is kept while every shard still fits
// and the table has not shrunk to under half of what it needs, so a table that grows
// or shrinks by a drain rewrites one shard and shard 0, not all of them; and when m
// does grow by one, the jump hash moves only about 1/m of the apps.
func Split(t *Table, maxBytes int, prevShards ...int) ([][]byte, error) {
	prev := 0
	if len(prevShards) > 0 {
		prev = prevShards[0]
	}
	return (*Encoder)(nil).Split(t, maxBytes, prev)
}

// split is Split with the apps' encodings given (enc[i] is t.Apps[i]'s JSON) and,
// when cache is not nil, the shards it wrote last time.
func split(t *Table, enc [][]byte, maxBytes, prev int, cache *shardCache) ([][]byte, error) {
	if t.Version == "" {
		return nil, errors.New("split routing table: table is not sealed")
	}
	total := 0
	for _, b := range enc {
		total += len(b) + 1
	}
	head, err := json.Marshal(Table{SessionKeys: t.SessionKeys, Platform: t.Platform})
	if err != nil {
		return nil, fmt.Errorf("split routing table: %w", err)
	}
	// Field names, version, digest, brackets.
	overhead := 256 + len(head)
	for i, b := range enc {
		if len(b)+overhead > maxBytes {
			return nil, fmt.Errorf("split routing table: app %q alone needs %d bytes, limit %d", t.Apps[i].ID, len(b), maxBytes)
		}
	}
	// One shard while the table fits; once split, back to one only when it has
	// shrunk well below (no rewriting everything back and forth at the boundary).
	if total+overhead <= maxBytes && (prev <= 1 || float64(total) <= ShardFill/2*float64(maxBytes)) {
		return encodeShards(t, [][][]byte{enc}, cache)
	}
	bucketsOf := func(m int) []int {
		out := make([]int, len(t.Apps))
		for i, a := range t.Apps {
			out[i] = shardOf(a.ID, m)
		}
		return out
	}
	fits := func(m int, of []int) bool {
		size := make([]int, m)
		for i, b := range enc {
			size[of[i]] += len(b) + 1
		}
		return slices.Max(size)+overhead <= maxBytes && overhead+24*(m+1) <= maxBytes
	}
	need := max(1, int(float64(total)/(ShardFill*float64(maxBytes-overhead))+0.999))
	m, of := 0, []int(nil)
	if prev >= 2 && prev-1 <= 2*need {
		if o := bucketsOf(prev - 1); fits(prev-1, o) {
			m, of = prev-1, o
		}
	}
	for m == 0 {
		if need > 4*len(t.Apps)+4 {
			return nil, fmt.Errorf("split routing table: no shard count up to %d fits %d bytes per shard", need, maxBytes)
		}
		if o := bucketsOf(need); fits(need, o) {
			m, of = need, o
			break
		}
		need++
	}
	// Each shard's apps array is spliced from the encodings above (in ID order, as
	// the table is sealed): the apps are marshalled once however many shards.
	parts := make([][][]byte, m+1) // shard 0 carries no apps
	for i, b := range enc {
		parts[of[i]+1] = append(parts[of[i]+1], b)
	}
	return encodeShards(t, parts, cache)
}

// encodeShards writes the shards whose apps' encodings are given, shard 0 first.
// Each is a Table's JSON, spliced by hand around its apps array: marshalling
// the array as a json.RawMessage would have encoding/json scan and copy every byte
// of the table again to check it.
func encodeShards(t *Table, parts [][][]byte, cache *shardCache) ([][]byte, error) {
	n := len(parts)
	out := make([][]byte, n)
	digests := make([]string, n)
	for i := n - 1; i >= 0; i-- { // shard 0 last: it lists the others' digests
		if i > 0 && cache.has(n, i, parts[i]) {
			out[i], digests[i] = cache.out[i], cache.digests[i]
			continue
		}
		h := shardHead{Shard: i, Shards: n}
		if i == 0 {
			h.Version = t.Version // only shard 0: the others change only with their apps
		}
		head, err := json.Marshal(h)
		if err != nil {
			return nil, fmt.Errorf("split routing table: %w", err)
		}
		size := len(head) + len(`,"apps":[]`)
		for _, e := range parts[i] {
			size += len(e) + 1
		}
		b := make([]byte, 0, size+256)
		b = append(b, head[:len(head)-1]...) // without its '}'
		b = append(b, `,"apps":`...)
		apps := len(b)
		b = append(b, '[')
		for j, e := range parts[i] {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, e...)
		}
		b = append(b, ']')
		sum := sha256.Sum256(b[apps:])
		digests[i] = hex.EncodeToString(sum[:8])
		tail := shardTail{Digest: digests[i]}
		if i == 0 {
			// Small, and shard 0 is the one every router reads.
			tail.SessionKeys, tail.Platform, tail.Digests = t.SessionKeys, t.Platform, digests
		}
		tb, err := json.Marshal(tail)
		if err != nil {
			return nil, fmt.Errorf("split routing table: %w", err)
		}
		b = append(append(b, ','), tb[1:]...) // tail always has its digest: never "{}"
		out[i] = b
	}
	cache.keep(parts, out, digests)
	return out, nil
}

// shardCache is the shards an Encoder wrote last, with the app encodings each was
// made of. An Encoder's encodings never change once made, so a shard made of the
// same encodings (the same slices) in the same number of shards is the same bytes:
// a one-drain change then copies and hashes only its app's shard and shard 0.
type shardCache struct {
	parts   [][][]byte
	out     [][]byte
	digests []string
}

func (c *shardCache) has(n, i int, part [][]byte) bool {
	if c == nil || len(c.parts) != n || len(c.parts[i]) != len(part) {
		return false
	}
	for j, e := range part {
		o := c.parts[i][j]
		if len(o) != len(e) || len(e) == 0 || &o[0] != &e[0] {
			return false
		}
	}
	return true
}

func (c *shardCache) keep(parts [][][]byte, out [][]byte, digests []string) {
	if c != nil {
		c.parts, c.out, c.digests = parts, out, digests
	}
}

// shardHead and shardTail are the fields of a Table before and after its apps, in
// the order shards have always had them (apps before digest).
type shardHead struct {
	Version string `json:"version"`
	Shard   int    `json:"shard"`
	Shards  int    `json:"shards"`
}

type shardTail struct {
	Digest      string       `json:"digest,omitempty"`
	Digests     []string     `json:"digests,omitempty"`
	SessionKeys []SessionKey `json:"sessionKeys,omitempty"`
	Platform    []Token      `json:"platform,omitempty"`
}

// shardOf is the shard of an app among n: a jump consistent hash (Lamping and Veach,
// 2014) of the FNV-1a hash of its ID.
func shardOf(id string, n int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	key := h.Sum64()
	b, j := int64(-1), int64(0)
	for j < int64(n) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// ErrShardsMismatch means the shards belong to different versions: a writer is between
// shards, and the reader should try again shortly.
var ErrShardsMismatch = errors.New("routing table shards disagree on version")

// MaxShards bounds the shard count a table may claim. Shard 0's count is read before
// any other shard and readers size their work by it, so a count beyond what any
// writer makes (the manager's --max-shards is far below) is refused before anything
// is allocated or fetched for it.
const MaxShards = 4096

// Head is what shard 0 says about the others.
type Head struct {
	Shards int
	// Digests of every shard, by index; nil for a table written before shards had
	// digests (every shard then carries the table version instead).
	Digests []string
}

// ReadHead reads how many shards a table has, and their digests, from shard 0.
func ReadHead(shard0 []byte) (Head, error) {
	var h struct {
		Shards  int      `json:"shards"`
		Digests []string `json:"digests"`
	}
	if err := json.Unmarshal(shard0, &h); err != nil {
		return Head{}, fmt.Errorf("read routing table head: %w", err)
	}
	if h.Shards < 1 {
		h.Shards = 1
	}
	if h.Shards > MaxShards {
		return Head{}, fmt.Errorf("read routing table head: %d shards, at most %d", h.Shards, MaxShards)
	}
	if h.Digests != nil && len(h.Digests) != h.Shards {
		return Head{}, fmt.Errorf("read routing table head: %d digests for %d shards", len(h.Digests), h.Shards)
	}
	return Head{Shards: h.Shards, Digests: h.Digests}, nil
}

// Join decodes shard 0 and the others (in order) into one table, apps in ID order.
func Join(shards [][]byte) (*Table, error) {
	parts := make([]*Table, len(shards))
	for i, b := range shards {
		var t Table
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("join routing table: shard %d: %w", i, err)
		}
		parts[i] = &t
	}
	return Assemble(parts)
}

// ShardCount reads how many shards a table has from shard 0's bytes.
func ShardCount(shard0 []byte) (int, error) {
	h, err := ReadHead(shard0)
	return h.Shards, err
}
