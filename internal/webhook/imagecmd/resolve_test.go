package imagecmd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// serve runs go-containerregistry's in-memory registry on 127.0.0.1, behind Basic
// auth when user is set, counting manifest and blob reads.
func serve(t *testing.T, user, pass string) (host string, reads *atomic.Int64) {
	t.Helper()
	reg := registry.New()
	reads = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" && r.URL.Path != "/v2/" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if r.Method == http.MethodGet && (strings.Contains(r.URL.Path, "/manifests/") || strings.Contains(r.URL.Path, "/blobs/")) {
			reads.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), reads
}

func push(t *testing.T, host, repo string, cfg v1.Config, user, pass string) {
	t.Helper()
	img, err := mutate.Config(empty.Image, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{}
	if user != "" {
		opts = append(opts, remote.WithAuth(&basic{user, pass}))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
}

type basic struct{ u, p string }

func (b *basic) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.u, Password: b.p}, nil
}

func TestResolve(t *testing.T) {
	host, reads := serve(t, "", "")
	push(t, host, "app/web:1", v1.Config{Entrypoint: []string{"/web"}, Cmd: []string{"--port", "80"}}, "", "")
	r := New([]string{host})
	ctx := context.Background()
	c, err := r.Resolve(ctx, host+"/app/web:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Entrypoint, []string{"/web"}) || !slices.Equal(c.Cmd, []string{"--port", "80"}) || c.Digest == "" {
		t.Fatalf("resolved %+v", c)
	}
	// Cached: a second lookup of the tag within its TTL reads nothing, and the same
	// digest by reference reads nothing either.
	before := reads.Load()
	if _, err := r.Resolve(ctx, host+"/app/web:1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, host+"/app/web@"+c.Digest, nil); err != nil {
		t.Fatal(err)
	}
	if reads.Load() != before {
		t.Errorf("cached lookups read the registry %d times", reads.Load()-before)
	}
	// A moved tag is seen once its TTL is over.
	push(t, host, "app/web:1", v1.Config{Entrypoint: []string{"/web2"}}, "", "")
	now := time.Now()
	r.now = func() time.Time { return now.Add(2 * time.Minute) }
	c2, err := r.Resolve(ctx, host+"/app/web:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c2.Entrypoint, []string{"/web2"}) || c2.Digest == c.Digest {
		t.Errorf("after the tag moved: %+v", c2)
	}
}

func TestResolvePullSecret(t *testing.T) {
	host, _ := serve(t, "alice", "s3cret")
	push(t, host, "private/app:2", v1.Config{Entrypoint: []string{"/app"}}, "alice", "s3cret")
	r := New([]string{host})
	if _, err := r.Resolve(context.Background(), host+"/private/app:2", nil); err == nil {
		t.Fatal("resolved a private image without credentials")
	}
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	for kind, secret := range map[string]string{
		".dockerconfigjson": fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth),
		".dockercfg":        fmt.Sprintf(`{"http://%s/v1/":{"username":"alice","password":"s3cret"}}`, host),
	} {
		c, err := New([]string{host}).Resolve(context.Background(), host+"/private/app:2", [][]byte{[]byte("not json"), []byte(secret)})
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if !slices.Equal(c.Entrypoint, []string{"/app"}) {
			t.Fatalf("%s: %+v", kind, c)
		}
	}
}

func TestResolveTimeBudget(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	t.Cleanup(func() { close(block); srv.Close() })
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := New([]string{host}).Resolve(ctx, host+"/slow/app:1", nil); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a registry that never answers resolved")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Resolve ignored its context")
	}
}

func TestApply(t *testing.T) {
	for _, tt := range []struct {
		c             Command
		args          []string
		wantCmd, want []string
		err           bool
	}{
		{Command{Entrypoint: []string{"/e"}, Cmd: []string{"c"}}, nil, []string{"/e"}, []string{"c"}, false},
		{Command{Entrypoint: []string{"/e"}, Cmd: []string{"c"}}, []string{"a"}, []string{"/e"}, []string{"a"}, false},
		{Command{Cmd: []string{"/c", "x"}}, nil, []string{"/c", "x"}, nil, false},
		{Command{Cmd: []string{"/c"}}, []string{"/a", "y"}, []string{"/a", "y"}, nil, false},
		{Command{}, nil, nil, nil, true},
	} {
		cmd, args, err := tt.c.Apply(tt.args)
		if (err != nil) != tt.err || !slices.Equal(cmd, tt.wantCmd) || !slices.Equal(args, tt.want) {
			t.Errorf("%+v.Apply(%q) = %q %q %v", tt.c, tt.args, cmd, args, err)
		}
	}
}

// TestResolveRemembersFailures: a registry that does not answer is asked once per
// FailTTL for any image, so a burst of pods does not each spend the whole budget; an
// image the registry refuses (404) is remembered alone, and both are asked again
// once the TTL is over.
func TestResolveRemembersFailures(t *testing.T) {
	var requests atomic.Int64
	down := atomic.Bool{}
	down.Store(true)
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if down.Load() {
			<-r.Context().Done() // hangs until the client gives up, as a dead host does
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	r := New([]string{host})
	now := time.Now()
	r.now = func() time.Time { return now }

	budget := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	if _, err := r.Resolve(budget(), host+"/app/web:1", nil); err == nil {
		t.Fatal("resolved against a registry that does not answer")
	}
	asked := requests.Load()
	if asked == 0 {
		t.Fatal("the registry was never asked")
	}
	// Within FailTTL: answered from the cache for this image and any other of the
	// registry, with the cause, before the budget could run out.
	for _, img := range []string{"/app/web:1", "/app/other:2"} {
		ctx := budget()
		_, err := r.Resolve(ctx, host+img, nil)
		var ce *CachedError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "registry "+host) {
			t.Fatalf("%s while the registry is remembered down: %v", img, err)
		}
		if ctx.Err() != nil {
			t.Errorf("%s: the cached failure waited for the budget", img)
		}
	}
	if n := requests.Load(); n != asked {
		t.Errorf("the remembered-down registry was asked %d more times", n-asked)
	}

	// The registry comes back; after FailTTL it is asked again.
	down.Store(false)
	push(t, host, "app/web:1", v1.Config{Entrypoint: []string{"/web"}}, "", "")
	now = now.Add(DefaultFailTTL)
	c, err := r.Resolve(budget(), host+"/app/web:1", nil)
	if err != nil || !slices.Equal(c.Entrypoint, []string{"/web"}) {
		t.Fatalf("after FailTTL: %+v, %v", c, err)
	}

	// An image the registry answers for with an error is remembered alone.
	if _, err := r.Resolve(budget(), host+"/app/missing:1", nil); err == nil {
		t.Fatal("resolved an image that was never pushed")
	}
	asked = requests.Load()
	_, err = r.Resolve(budget(), host+"/app/missing:1", nil)
	var ce *CachedError
	if !errors.As(err, &ce) || ce.Scope != "image "+host+"/app/missing:1" {
		t.Errorf("second lookup of a missing image: %v", err)
	}
	if requests.Load() != asked {
		t.Error("a remembered missing image was asked for again")
	}
	push(t, host, "app/other:2", v1.Config{Entrypoint: []string{"/other"}}, "", "")
	if _, err := r.Resolve(budget(), host+"/app/other:2", nil); err != nil {
		t.Errorf("another image of a registry that answers: %v", err)
	}
	// Pushed meanwhile: seen once the failure's TTL is over.
	push(t, host, "app/missing:1", v1.Config{Entrypoint: []string{"/late"}}, "", "")
	now = now.Add(DefaultFailTTL)
	if c, err := r.Resolve(budget(), host+"/app/missing:1", nil); err != nil || !slices.Equal(c.Entrypoint, []string{"/late"}) {
		t.Errorf("image pushed after a failed lookup, after FailTTL: %+v, %v", c, err)
	}
}
