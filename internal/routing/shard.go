package routing

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ShardName returns the Secret name of shard i: the base name for shard 0, so an
// unsplit table lives in one Secret with the expected name, and "<base>-<i>" after.
func ShardName(base string, i int) string {
	if i == 0 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i)
}

// Split encodes a sealed table into shards of at most maxBytes each (JSON), keeping
// every app whole. Shard 0 is the one routers watch: writers must store it last, so a
// router that sees a new version in shard 0 finds every other shard already written.
func Split(t *Table, maxBytes int) ([][]byte, error) {
	if t.Version == "" {
		return nil, errors.New("split routing table: table is not sealed")
	}
	var shards [][]App
	cur, size := []App{}, 0
	keys, err := json.Marshal(t.SessionKeys)
	if err != nil {
		return nil, fmt.Errorf("split routing table: %w", err)
	}
	// Version, shard numbers, brackets, and the session keys shard 0 carries.
	overhead := 128 + len(keys)
	for _, a := range t.Apps {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("split routing table: %w", err)
		}
		if len(b)+overhead > maxBytes {
			return nil, fmt.Errorf("split routing table: app %q alone needs %d bytes, limit %d", a.ID, len(b), maxBytes)
		}
		if size+len(b)+1+overhead > maxBytes && len(cur) > 0 {
			shards = append(shards, cur)
			cur, size = []App{}, 0
		}
		cur = append(cur, a)
		size += len(b) + 1
	}
	shards = append(shards, cur)
	out := make([][]byte, len(shards))
	for i, apps := range shards {
		sh := Table{Version: t.Version, Shard: i, Shards: len(shards), Apps: apps}
		if i == 0 {
			// Small, and shard 0 is the one every router reads.
			sh.SessionKeys = t.SessionKeys
			sh.Platform = t.Platform
		}
		b, err := json.Marshal(sh)
		if err != nil {
			return nil, fmt.Errorf("split routing table: %w", err)
		}
		out[i] = b
	}
	return out, nil
}

// ErrShardsMismatch means the shards belong to different versions: a writer is between
// shards, and the reader should try again shortly.
var ErrShardsMismatch = errors.New("routing table shards disagree on version")

// Join decodes shard 0 and the others (in order) into one table.
func Join(shards [][]byte) (*Table, error) {
	if len(shards) == 0 {
		return nil, errors.New("join routing table: no shards")
	}
	var whole *Table
	for i, b := range shards {
		var t Table
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("join routing table: shard %d: %w", i, err)
		}
		if i == 0 {
			if t.Shards < 1 {
				t.Shards = 1
			}
			if t.Shards != len(shards) {
				return nil, fmt.Errorf("join routing table: %w: shard 0 wants %d shards, have %d", ErrShardsMismatch, t.Shards, len(shards))
			}
			whole = &Table{Version: t.Version, Shards: 1, SessionKeys: t.SessionKeys, Platform: t.Platform}
		} else if t.Version != whole.Version || t.Shard != i {
			return nil, fmt.Errorf("join routing table: %w: shard %d", ErrShardsMismatch, i)
		}
		whole.Apps = append(whole.Apps, t.Apps...)
	}
	if err := whole.Validate(); err != nil {
		return nil, err
	}
	return whole, nil
}

// ShardCount reads how many shards a table has from shard 0's bytes.
func ShardCount(shard0 []byte) (int, error) {
	var head struct {
		Shards int `json:"shards"`
	}
	if err := json.Unmarshal(shard0, &head); err != nil {
		return 0, fmt.Errorf("read routing table head: %w", err)
	}
	if head.Shards < 1 {
		return 1, nil
	}
	return head.Shards, nil
}
