package routing

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// shardJSON is how shards were encoded before the Encoder (json.Marshal of the
// whole shard, apps as a raw array): the reference the spliced shards must match.
type shardJSON struct {
	Version     string          `json:"version"`
	Shard       int             `json:"shard"`
	Shards      int             `json:"shards"`
	Apps        json.RawMessage `json:"apps"`
	Digest      string          `json:"digest,omitempty"`
	Digests     []string        `json:"digests,omitempty"`
	SessionKeys []SessionKey    `json:"sessionKeys,omitempty"`
	Platform    []Token         `json:"platform,omitempty"`
}

// referenceVersion is Seal's version as it was computed before the Encoder: the
// hash of the whole apps array marshalled at once.
func referenceVersion(t *testing.T, tbl *Table) string {
	t.Helper()
	b, err := json.Marshal(tbl.Apps)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.SessionKeys) > 0 {
		k, _ := json.Marshal(tbl.SessionKeys)
		b = append(append(b, '\n'), k...)
	}
	if len(tbl.Platform) > 0 {
		p, _ := json.Marshal(tbl.Platform)
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// referenceShards re-encodes the shards Split wrote the way they were written before:
// each shard's apps re-marshalled, and the shard marshalled with json.Marshal.
func referenceShards(t *testing.T, shards [][]byte) [][]byte {
	t.Helper()
	out := make([][]byte, len(shards))
	for i, b := range shards {
		var tbl Table
		if err := json.Unmarshal(b, &tbl); err != nil {
			t.Fatal(err)
		}
		apps, err := json.Marshal(tbl.Apps)
		if err != nil {
			t.Fatal(err)
		}
		if tbl.Apps == nil {
			apps = []byte("[]")
		}
		sum := sha256.Sum256(apps)
		sh := shardJSON{Version: tbl.Version, Shard: tbl.Shard, Shards: tbl.Shards, Apps: apps,
			Digest: hex.EncodeToString(sum[:8]), Digests: tbl.Digests, SessionKeys: tbl.SessionKeys, Platform: tbl.Platform}
		if out[i], err = json.Marshal(sh); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// full is an app with every field of App, Token, Drain and TLS set.
func full(id string) App {
	na := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return App{
		ID: id, History: 1500,
		Tokens: []Token{
			{SHA256: HashToken("t.1"), Source: "app", AllowedSources: []string{"web"}, Collector: true, NotAfter: &na},
			{Token: "t.raw<&>", Source: "addon"},
		},
		Hosts: []string{"a.example.com", "b.example.com"},
		Drains: []Drain{{
			ID: id + "-d", Token: "d.1", URL: "https://logs.example.com/x?k=<v>", Username: "u", Password: "p",
			HMACKey: "k", TLS: &TLS{CAPEM: "pem", ServerName: "logs", InsecureSkipVerify: true},
			Headers: map[string]string{"x-key": "v"}, Compression: CompressionNone,
		}},
	}
}

// TestEncoderWritesWhatSealAndSplitWrote checks that a warm Encoder, through a run
// of changes, gives each table the version and the shard bytes a fresh encoding
// gives it and the ones the encoding before the Encoder gave it.
func TestEncoderWritesWhatSealAndSplitWrote(t *testing.T) {
	const maxBytes = 4000
	tbl := sample(60)
	tbl.Apps[0] = full(tbl.Apps[0].ID)
	tbl.SessionKeys = []SessionKey{{ID: "k1", Key: strings.Repeat("ab", 32), Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	tbl.Platform = []Token{{SHA256: HashToken("p.1"), Source: PlatformSource}}
	steps := []struct {
		name   string
		change func(*Table)
	}{
		{"first", func(*Table) {}},
		{"unchanged", func(*Table) {}},
		{"drain URL changed in place", func(x *Table) { x.Apps[7].Drains[1].URL = "syslog+tls://other:6514" }},
		{"token NotAfter changed in place", func(x *Table) { *x.Apps[0].Tokens[0].NotAfter = x.Apps[0].Tokens[0].NotAfter.Add(time.Second) }},
		{"header changed in place", func(x *Table) { x.Apps[0].Drains[0].Headers["x-key"] = "w" }},
		{"app removed", func(x *Table) { x.Apps = slices.Delete(x.Apps, 3, 4) }},
		{"app added", func(x *Table) { x.Apps = append(x.Apps, full("ns/zz-new")) }},
		{"many apps added, more shards", func(x *Table) {
			for i := range 40 {
				x.Apps = append(x.Apps, full(fmt.Sprintf("ns/more-%02d", i)))
			}
		}},
		{"every app gone", func(x *Table) { x.Apps = []App{} }},
	}
	var e Encoder
	prev, most := 0, 0
	for _, st := range steps {
		st.change(tbl)
		e.Seal(tbl)
		got, err := e.Split(tbl, maxBytes, prev)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		fresh := *tbl
		fresh.Apps = make([]App, len(tbl.Apps))
		for i := range tbl.Apps {
			fresh.Apps[i] = tbl.Apps[i].Clone()
		}
		fresh.Seal()
		want, err := Split(&fresh, maxBytes, prev)
		if err != nil {
			t.Fatal(err)
		}
		if tbl.Version != fresh.Version || tbl.Version != referenceVersion(t, tbl) {
			t.Fatalf("%s: version %s, fresh %s, reference %s", st.name, tbl.Version, fresh.Version, referenceVersion(t, tbl))
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d shards, fresh %d", st.name, len(got), len(want))
		}
		ref := referenceShards(t, got)
		for i := range got {
			if !bytes.Equal(got[i], want[i]) || !bytes.Equal(got[i], ref[i]) {
				t.Fatalf("%s: shard %d differs:\n got %.300s\nfresh %.300s\n ref %.300s", st.name, i, got[i], want[i], ref[i])
			}
		}
		joined, err := Join(got)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if joined.Version != tbl.Version || len(joined.Apps) != len(tbl.Apps) {
			t.Fatalf("%s: joined %s with %d apps", st.name, joined.Version, len(joined.Apps))
		}
		prev, most = len(got), max(most, len(got))
		t.Logf("%s: %d shards", st.name, len(got))
	}
	if most < 2 {
		t.Fatal("the steps never split the table: the shard path was not tested")
	}
}

// TestEncoderSeesEveryField changes each leaf field of an app (App, Token, Drain,
// TLS, a token's NotAfter and its zone) in turn and requires a warm Encoder to write
// the new encoding, not the one it kept.
func TestEncoderSeesEveryField(t *testing.T) {
	base := full("ns/a")
	var e Encoder
	encoded := func(a App) []byte {
		tbl := &Table{Apps: []App{a}}
		e.Seal(tbl)
		return e.last[0]
	}
	n := 0
	// walk visits every leaf field; at reaches it from an app's root value.
	var walk func(path string, v reflect.Value, at func(reflect.Value) reflect.Value)
	walk = func(path string, v reflect.Value, at func(reflect.Value) reflect.Value) {
		switch {
		case v.Kind() == reflect.Struct && v.Type() != reflect.TypeOf(time.Time{}):
			for i := range v.NumField() {
				walk(path+"."+v.Type().Field(i).Name, v.Field(i), func(r reflect.Value) reflect.Value { return at(r).Field(i) })
			}
			return
		case v.Kind() == reflect.Slice:
			if v.Len() == 0 {
				t.Fatalf("%s: the full app leaves it empty", path)
			}
			walk(path+"[0]", v.Index(0), func(r reflect.Value) reflect.Value { return at(r).Index(0) })
			return
		case v.Kind() == reflect.Pointer:
			if v.IsNil() {
				t.Fatalf("%s: the full app leaves it nil", path)
			}
			walk(path, v.Elem(), func(r reflect.Value) reflect.Value { return at(r).Elem() })
			return
		}
		n++
		encoded(base)
		c := base.Clone()
		x := at(reflect.ValueOf(&c).Elem())
		switch x.Kind() {
		case reflect.String:
			x.SetString(x.String() + "x")
		case reflect.Int:
			x.SetInt(x.Int() + 1)
		case reflect.Bool:
			x.SetBool(!x.Bool())
		case reflect.Map:
			m := reflect.MakeMap(x.Type())
			m.SetMapIndex(reflect.ValueOf("other"), reflect.ValueOf("v"))
			x.Set(m)
		case reflect.Struct: // time.Time
			x.Set(reflect.ValueOf(x.Interface().(time.Time).Add(time.Second)))
		default:
			t.Fatalf("%s: kind %s not handled by this test", path, x.Kind())
		}
		want := marshalApp(&c)
		if bytes.Equal(want, marshalApp(&base)) {
			t.Errorf("%s changed, the encoding did not: the test changed nothing", path)
		}
		if got := encoded(c); !bytes.Equal(got, want) {
			t.Errorf("%s changed, the Encoder wrote the encoding it kept:\n got %s\nwant %s", path, got, want)
		}
	}
	// The same instant in another zone encodes differently.
	encoded(base)
	c := base.Clone()
	na := c.Tokens[0].NotAfter.In(time.FixedZone("X", 3600))
	c.Tokens[0].NotAfter = &na
	if got, want := encoded(c), marshalApp(&c); !bytes.Equal(got, want) {
		t.Errorf("NotAfter in another zone: the Encoder wrote %s, want %s", got, want)
	}
	walk("App", reflect.ValueOf(&base).Elem(), func(r reflect.Value) reflect.Value { return r })
	if n < 20 {
		t.Fatalf("only %d fields walked", n)
	}
}

func BenchmarkEncoderOneAppChanged(b *testing.B) {
	tbl := sample(25000)
	var e Encoder
	e.Seal(tbl)
	prev := 0
	if s, err := e.Split(tbl, 900<<10, 0); err == nil {
		prev = len(s)
	}
	b.ResetTimer()
	for i := range b.N {
		tbl.Apps[i%len(tbl.Apps)].Drains[0].URL = fmt.Sprintf("syslog://logs-%d.example.com:514", i)
		e.Seal(tbl)
		if _, err := e.Split(tbl, 900<<10, prev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealSplitNoEncoder(b *testing.B) {
	tbl := sample(25000)
	for i := range b.N {
		tbl.Apps[i%len(tbl.Apps)].Drains[0].URL = fmt.Sprintf("syslog://logs-%d.example.com:514", i)
		tbl.Seal()
		if _, err := Split(tbl, 900<<10, 0); err != nil {
			b.Fatal(err)
		}
	}
}
