package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Encoder seals and splits tables like Table.Seal and Split, and keeps each app's
// JSON encoding between tables: the manager renders the whole table on every change,
// and at 50,000 drains encoding every app twice (once for the version, once for the
// shards) cost more than everything else the change did (docs/scaling.md). With an
// Encoder a table that differs from the last one by a few apps encodes those apps
// only. The bytes are the ones Seal and Split write, so versions and shards do not
// depend on whether an Encoder was used.
//
// An app's cached encoding is reused when the app is Equal to the one it was made
// from (Equal requires a token's NotAfter in the same zone, which its encoding
// shows); the Encoder keeps its own copy of that app, so a caller that
// changes a table after sealing it cannot make a stale encoding look current.
// A nil *Encoder caches nothing. Not safe for concurrent use.
type Encoder struct {
	apps map[string]*encodedApp
	gen  uint64
	// What the last Seal encoded, so Split of that table encodes nothing again.
	lastVersion string
	last        [][]byte
	shards      shardCache
}

type encodedApp struct {
	app App
	enc []byte
	gen uint64
}

// Seal sorts t into its canonical order and sets Version from the content, as
// Table.Seal does.
func (e *Encoder) Seal(t *Table) {
	slices.SortFunc(t.Apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	for i := range t.Apps {
		a := &t.Apps[i]
		slices.SortFunc(a.Drains, func(x, y Drain) int { return strings.Compare(x.ID, y.ID) })
		slices.Sort(a.Hosts)
	}
	slices.SortFunc(t.Platform, func(a, b Token) int { return strings.Compare(a.Digest(), b.Digest()) })
	t.Version = ""
	t.Shard, t.Shards = 0, 1
	t.Digest, t.Digests = "", nil
	enc := e.encodeApps(t.Apps)
	// The version is the hash of json.Marshal(t.Apps), which is the apps' encodings
	// in a JSON array: hashed piece by piece, without building the array.
	h := sha256.New()
	if t.Apps == nil {
		h.Write([]byte("null"))
	} else {
		h.Write([]byte{'['})
		for i, b := range enc {
			if i > 0 {
				h.Write([]byte{','})
			}
			h.Write(b)
		}
		h.Write([]byte{']'})
	}
	// Keys change the version (routers must see a rotation) but a table without keys
	// hashes as before.
	if len(t.SessionKeys) > 0 {
		k, err := json.Marshal(t.SessionKeys)
		if err != nil {
			panic(fmt.Sprintf("routing: marshal session keys: %v", err)) // plain structs always marshal
		}
		h.Write([]byte{'\n'})
		h.Write(k)
	}
	if len(t.Platform) > 0 {
		// Appended only when present, so tables without platform credentials keep
		// the versions they always had.
		p, err := json.Marshal(t.Platform)
		if err != nil {
			panic(fmt.Sprintf("routing: marshal table: %v", err))
		}
		h.Write(p)
	}
	t.Version = hex.EncodeToString(h.Sum(nil)[:8])
	if e != nil {
		e.lastVersion, e.last = t.Version, enc
	}
}

// Split encodes a sealed table into shards as Split does. The shards it returns
// may be returned again by a later Split: they must not be modified.
func (e *Encoder) Split(t *Table, maxBytes, prevShards int) ([][]byte, error) {
	if e == nil {
		return split(t, e.encodeApps(t.Apps), maxBytes, prevShards, nil)
	}
	enc := e.last
	if e.lastVersion == "" || e.lastVersion != t.Version || len(e.last) != len(t.Apps) {
		enc = e.encodeApps(t.Apps)
	}
	return split(t, enc, maxBytes, prevShards, &e.shards)
}

// encodeApps returns each app's JSON encoding, from the cache where the app is
// unchanged. Cached apps that are not in apps are forgotten.
func (e *Encoder) encodeApps(apps []App) [][]byte {
	enc := make([][]byte, len(apps))
	if e == nil {
		for i := range apps {
			enc[i] = marshalApp(&apps[i])
		}
		return enc
	}
	if e.apps == nil {
		e.apps = make(map[string]*encodedApp, len(apps))
	}
	e.gen++
	for i := range apps {
		a := &apps[i]
		c := e.apps[a.ID]
		if c == nil || !c.app.Equal(a) {
			c = &encodedApp{app: a.Clone(), enc: marshalApp(a)}
			e.apps[a.ID] = c
		}
		c.gen = e.gen
		enc[i] = c.enc
	}
	if len(e.apps) > len(apps) {
		maps.DeleteFunc(e.apps, func(_ string, c *encodedApp) bool { return c.gen != e.gen })
	}
	return enc
}

func marshalApp(a *App) []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("routing: marshal app: %v", err)) // plain structs always marshal
	}
	return b
}
