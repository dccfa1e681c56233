package routes

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/routing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// loadInput reads a multi-document YAML file of LogApps, LogDrains and Secrets.
func loadInput(t testing.TB, path string) Input {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in Input
	for i, doc := range strings.Split(string(b), "\n---") {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s doc %d: %v", path, i, err)
		}
		switch head.Kind {
		case "":
			continue
		case "LogApp":
			var o kubeplexv1alpha1.LogApp
			mustUnmarshal(t, doc, &o)
			in.Apps = append(in.Apps, o)
		case "LogDrain":
			var o kubeplexv1alpha1.LogDrain
			mustUnmarshal(t, doc, &o)
			in.Drains = append(in.Drains, o)
		case "Secret":
			var o corev1.Secret
			mustUnmarshal(t, doc, &o)
			if o.Data == nil {
				o.Data = map[string][]byte{}
			}
			for k, v := range o.StringData {
				o.Data[k] = []byte(v)
			}
			o.StringData = nil
			if o.Name == kubeplexv1alpha1.PlatformSecretName {
				in.Platform = append(in.Platform, string(o.Data[kubeplexv1alpha1.TokenSecretKey]))
				continue
			}
			in.Secrets = append(in.Secrets, o)
		default:
			t.Fatalf("%s doc %d: unexpected kind %q", path, i, head.Kind)
		}
	}
	return in
}

func mustUnmarshal(t testing.TB, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, doc)
	}
}

func encodeResult(t testing.TB, r Result) []byte {
	t.Helper()
	b, err := json.MarshalIndent(struct {
		Table    *routing.Table `json:"table"`
		Problems []Problem      `json:"problems"`
	}{r.Table, r.Problems}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestRenderGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			got := encodeResult(t, Render(loadInput(t, f)))
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Render(%s) differs from %s (go test -update rewrites it):\n%s", f, golden, got)
			}
		})
	}
}

// TestRenderOrderIndependent: the cache lists objects in any order; the table and
// its version must not depend on it.
func TestRenderOrderIndependent(t *testing.T) {
	for _, f := range []string{"testdata/basic.yaml", "testdata/invalid.yaml"} {
		in := loadInput(t, f)
		want := encodeResult(t, Render(in))
		r := rand.New(rand.NewPCG(1, 2))
		for range 20 {
			r.Shuffle(len(in.Apps), func(i, j int) { in.Apps[i], in.Apps[j] = in.Apps[j], in.Apps[i] })
			r.Shuffle(len(in.Drains), func(i, j int) { in.Drains[i], in.Drains[j] = in.Drains[j], in.Drains[i] })
			r.Shuffle(len(in.Secrets), func(i, j int) { in.Secrets[i], in.Secrets[j] = in.Secrets[j], in.Secrets[i] })
			if got := encodeResult(t, Render(in)); !bytes.Equal(got, want) {
				t.Fatalf("%s: shuffled input renders differently:\n%s", f, got)
			}
		}
	}
}

// TestRenderLeavesOutOnlyTheBad: each bad object in invalid.yaml is reported, and the
// good app and its good drain are in the table whatever else is there.
func TestRenderLeavesOutOnlyTheBad(t *testing.T) {
	res := Render(loadInput(t, "testdata/invalid.yaml"))
	ids := map[string][]string{}
	for _, a := range res.Table.Apps {
		for _, d := range a.Drains {
			ids[a.ID] = append(ids[a.ID], d.ID)
		}
		if _, ok := ids[a.ID]; !ok {
			ids[a.ID] = nil
		}
	}
	want := map[string][]string{"ns1/good": {"ns1/ok"}, "ns2/late": nil}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("table holds %v, want %v", ids, want)
	}
	reasons := map[string]string{}
	for _, p := range res.Problems {
		reasons[p.Namespace+"/"+p.Name] += p.Reason + " "
	}
	for obj, reason := range map[string]string{
		"ns1/no-secret": ReasonTokenSecretMissing, "ns1/stale-owner": ReasonTokenSecretMissing,
		"ns1/bad-token": ReasonTokenInvalid, "ns1/good": ReasonTokenInvalid, "ns2/late": ReasonHostConflict,
		"ns1/refused": ReasonDrainNotAccepted, "ns1/new": ReasonDrainNotAccepted, "ns1/garbled": ReasonDrainSecretInvalid,
		"ns1/unreadable": ReasonDrainSecretInvalid, "ns1/orphan": ReasonAppNotRouted,
	} {
		if !strings.Contains(reasons[obj], reason) {
			t.Errorf("%s: problems %q, want %s", obj, reasons[obj], reason)
		}
	}
	if _, ok := reasons["ns1/going"]; ok {
		t.Errorf("an app being deleted is reported: %s", reasons["ns1/going"])
	}
}

// TestRenderNeverHoldsIngestTokens: the table carries ingest tokens only as digests.
func TestRenderNeverHoldsIngestTokens(t *testing.T) {
	for _, f := range []string{"testdata/basic.yaml", "testdata/rotation.yaml", "testdata/invalid.yaml"} {
		in := loadInput(t, f)
		b := encodeResult(t, Render(in))
		for _, s := range in.Secrets {
			for _, k := range []string{kubeplexv1alpha1.TokenSecretKey, kubeplexv1alpha1.PreviousTokenSecretKey} {
				if tok := s.Data[k]; len(tok) > 0 && bytes.Contains(b, tok) {
					t.Errorf("%s: table holds the plain %s of %s", f, k, s.Name)
				}
			}
		}
	}
}

// bigInput builds apps × drainsPerApp drains, every drain with credentials and a
// signing key, as a busy cluster would have.
func bigInput(apps, drainsPerApp int) Input {
	var in Input
	for a := range apps {
		ns := fmt.Sprintf("team-%03d", a)
		uid := types.UID(fmt.Sprintf("app-%d", a))
		in.Apps = append(in.Apps, kubeplexv1alpha1.LogApp{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app", UID: uid},
			Spec:       kubeplexv1alpha1.LogAppSpec{HistorySize: 1500, CollectorMode: kubeplexv1alpha1.CollectorExec},
		})
		in.Secrets = append(in.Secrets, corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app" + kubeplexv1alpha1.TokenSecretSuffix, OwnerReferences: owner(uid)},
			Data:       map[string][]byte{kubeplexv1alpha1.TokenSecretKey: fmt.Appendf(nil, "t.%08d-0000-4000-8000-000000000000", a)},
		})
		for d := range drainsPerApp {
			name := fmt.Sprintf("drain-%04d", d)
			duid := types.UID(fmt.Sprintf("drain-%d-%d", a, d))
			in.Drains = append(in.Drains, kubeplexv1alpha1.LogDrain{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: duid},
				Spec:       kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "app"}},
			})
			acc, _ := json.Marshal(AcceptedDrain{App: "app", URL: fmt.Sprintf("https://logs-%d.example.com:443/ingest/%s", d, ns),
				Username: "user", Password: fmt.Sprintf("password-%d-%d", a, d), Generation: 1})
			in.Secrets = append(in.Secrets, corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + kubeplexv1alpha1.DrainSecretSuffix, OwnerReferences: owner(duid)},
				Data: map[string][]byte{
					kubeplexv1alpha1.DrainTokenSecretKey:   fmt.Appendf(nil, "d.%08d-%04d-4000-8000-000000000000", a, d),
					kubeplexv1alpha1.DrainHMACKeySecretKey: fmt.Appendf(nil, "%064x", a*100000+d),
					kubeplexv1alpha1.DrainConfigSecretKey:  acc,
				},
			})
		}
	}
	return in
}

func owner(uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{UID: uid, Controller: ptr.To(true)}}
}

// TestRenderTenThousandDrains renders 10,000 drains, splits the table into shards
// below the Secret limit and joins them back to the same table.
func TestRenderTenThousandDrains(t *testing.T) {
	res := Render(bigInput(100, 100))
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %v", res.Problems[:min(3, len(res.Problems))])
	}
	n := 0
	for _, a := range res.Table.Apps {
		n += len(a.Drains)
	}
	if n != 10000 {
		t.Fatalf("table has %d drains, want 10000", n)
	}
	shards, err := routing.Split(res.Table, DefaultMaxShardBytes)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, s := range shards {
		total += len(s)
		if len(s) > DefaultMaxShardBytes {
			t.Errorf("shard %d is %d bytes, limit %d", i, len(s), DefaultMaxShardBytes)
		}
	}
	if total <= DefaultMaxShardBytes || len(shards) < 2 {
		t.Fatalf("%d bytes in %d shards: the test should need more than one shard", total, len(shards))
	}
	joined, err := routing.Join(shards)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(joined.Apps, res.Table.Apps) || joined.Version != res.Table.Version {
		t.Fatal("joined shards differ from the rendered table")
	}
	t.Logf("10,000 drains: %d bytes in %d shards", total, len(shards))
}

func BenchmarkRender10kDrains(b *testing.B) {
	in := bigInput(100, 100)
	b.ResetTimer()
	for b.Loop() {
		res := Render(in)
		if _, err := routing.Split(res.Table, DefaultMaxShardBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRendererRendersWhatRenderRenders changes each Secret of each testdata input in
// turn, as the API server stores a change (new data, new resourceVersion), and
// requires a Renderer that has seen every earlier version to render what Render
// renders from scratch. A change the API server would never make (new data, same
// resourceVersion) must be invisible to it: that is what it remembers.
func TestRendererRendersWhatRenderRenders(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in := loadInput(t, f)
			for i := range in.Secrets {
				in.Secrets[i].UID = types.UID("secret-" + in.Secrets[i].Name)
				in.Secrets[i].ResourceVersion = "1"
			}
			r := &Renderer{Encoder: &routing.Encoder{}}
			same := func(step string) {
				t.Helper()
				got, want := r.Render(in), Render(in)
				if g, w := encodeResult(t, got), encodeResult(t, want); !bytes.Equal(g, w) {
					t.Fatalf("%s: the Renderer renders\n%s\nRender renders\n%s", step, g, w)
				}
				// What a caller does with a table must not reach the next one.
				for a := range got.Table.Apps {
					for d := range got.Table.Apps[a].Drains {
						dr := &got.Table.Apps[a].Drains[d]
						if dr.TLS != nil {
							dr.TLS.ServerName = "changed"
						}
						for k := range dr.Headers {
							dr.Headers[k] = "changed"
						}
					}
					for k := range got.Table.Apps[a].Tokens {
						if na := got.Table.Apps[a].Tokens[k].NotAfter; na != nil {
							*na = na.Add(time.Hour)
						}
					}
				}
			}
			same("first")
			same("again")
			for i := range in.Secrets {
				s := &in.Secrets[i]
				old := s.Data
				s.Data = map[string][]byte{}
				for k, v := range old {
					s.Data[k] = append(slices.Clone(v), 'x')
				}
				s.ResourceVersion = "2"
				same(s.Name + " changed")
				s.Data, s.ResourceVersion = old, "3"
				same(s.Name + " back")
			}
			saved := slices.Clone(in.Secrets)
			in.Secrets = in.Secrets[:len(in.Secrets)/2]
			same("half the Secrets gone")
			in.Secrets = saved
			same("back")

			// The memory is used: data changed under the same resourceVersion.
			stale, tried := false, false
			for i := range in.Secrets {
				s := &in.Secrets[i]
				if _, ok := s.Data[kubeplexv1alpha1.DrainConfigSecretKey]; !ok {
					continue
				}
				tried = true
				s.Data = maps.Clone(s.Data)
				s.Data[kubeplexv1alpha1.DrainConfigSecretKey] = []byte("{}")
				stale = stale || !bytes.Equal(encodeResult(t, r.Render(in)), encodeResult(t, Render(in)))
			}
			if tried && !stale {
				t.Error("a drain Secret changed without a new resourceVersion and the Renderer saw it: it remembers nothing")
			}
		})
	}
}
