// Package imagecmd reads an image's ENTRYPOINT and CMD from its registry, so the
// webhook can wrap containers whose pod spec names no command (most Deployments name
// only an image), as Tekton does for its entrypoint rewriting. Lookups honour the
// pod's pull secrets, are cached by digest, and run under a time budget: a registry
// that cannot answer in time leaves the pod to the webhook's usual fallback.
package imagecmd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Command is what an image runs when the pod spec does not say.
type Command struct {
	Entrypoint []string
	Cmd        []string
	Digest     string
}

// Resolver looks image commands up. The zero value is not usable: use New.
type Resolver struct {
	// Insecure lists registries (host[:port]) spoken to over plain HTTP.
	Insecure []string
	// TagTTL is how long a tag's digest is trusted before it is looked up again.
	TagTTL time.Duration
	// FailTTL is how long a failed lookup is remembered: the same image (with the
	// same credentials) fails again at once instead of being asked for, and a
	// registry that did not answer at all (refused, timed out) is not asked for any
	// image. Without it a down registry costs every pod admitted meanwhile the whole
	// lookup budget.
	FailTTL time.Duration

	mu       sync.Mutex
	byDigest map[string]Command
	tags     map[string]tagEntry
	failed   map[string]failEntry // by credentials + reference, and by "registry " + host
	now      func() time.Time
}

type failEntry struct {
	err error
	at  time.Time
}

// DefaultFailTTL is New's FailTTL: short, so a registry that comes back (or an image
// that is pushed) is seen within seconds, long enough that a burst of pods (a
// Deployment scaling up) asks a down registry once.
const DefaultFailTTL = 10 * time.Second

type tagEntry struct {
	digest string
	at     time.Time
}

// New returns a Resolver with an empty cache.
func New(insecure []string) *Resolver {
	return &Resolver{Insecure: insecure, TagTTL: time.Minute, FailTTL: DefaultFailTTL,
		byDigest: map[string]Command{}, tags: map[string]tagEntry{}, failed: map[string]failEntry{}, now: time.Now}
}

// CachedError is a failed lookup answered from the cache.
type CachedError struct {
	// Scope is what failed: "image REF", or "registry HOST" when it did not answer.
	Scope string
	Err   error
	// Age is how long ago the lookup failed; TTL how long a failure is remembered.
	Age, TTL time.Duration
}

func (e *CachedError) Error() string {
	return fmt.Sprintf("%v (a lookup of %s failed %s ago; not asked again within %s of that)",
		e.Err, e.Scope, e.Age.Round(time.Millisecond), e.TTL)
}

func (e *CachedError) Unwrap() error { return e.Err }

// recentFailure returns the remembered failure under key, if it is younger than FailTTL.
func (r *Resolver) recentFailure(key, scope string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.failed[key]
	if !ok {
		return nil
	}
	age := r.now().Sub(f.at)
	if age >= r.FailTTL {
		delete(r.failed, key)
		return nil
	}
	return &CachedError{Scope: scope, Err: f.err, Age: age, TTL: r.FailTTL}
}

// remember records a failed lookup under key, and under its registry when the
// registry gave no HTTP answer at all (refused, reset, timed out).
func (r *Resolver) remember(ctx context.Context, key, registry string, err error) {
	if r.FailTTL <= 0 || errors.Is(ctx.Err(), context.Canceled) {
		return // a caller that gave up says nothing about the registry
	}
	// Refused, reset, unreachable, or the budget ran out: the registry itself is
	// down or too slow, whatever the image.
	var ne net.Error
	var te *transport.Error
	noAnswer := (errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)) && !errors.As(err, &te)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for k, f := range r.failed {
		if now.Sub(f.at) >= r.FailTTL {
			delete(r.failed, k)
		}
	}
	r.failed[key] = failEntry{err: err, at: now}
	if noAnswer {
		r.failed["registry "+registry] = failEntry{err: err, at: now}
	}
}

// Resolve returns image's command. pullSecrets are the raw .dockerconfigjson (or
// .dockercfg) values of the pod's imagePullSecrets; anonymous access is tried when
// none matches the registry. ctx bounds the whole lookup.
func (r *Resolver) Resolve(ctx context.Context, image string, pullSecrets [][]byte) (Command, error) {
	var opts []name.Option
	ref0, err := name.ParseReference(image)
	if err != nil {
		return Command{}, fmt.Errorf("image %q: %w", image, err)
	}
	if slices.Contains(r.Insecure, ref0.Context().RegistryStr()) {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.ParseReference(image, opts...)
	if err != nil {
		return Command{}, fmt.Errorf("image %q: %w", image, err)
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain(pullSecrets))}
	// Entries are per set of credentials: a pod without access to a private image
	// must not learn its command from another pod's lookup.
	h := sha256.New()
	for _, s := range pullSecrets {
		h.Write(s)
		h.Write([]byte{0})
	}
	creds := hex.EncodeToString(h.Sum(nil))[:16] + " "
	registry := ref.Context().RegistryStr()
	if err := r.recentFailure("registry "+registry, "registry "+registry); err != nil {
		return Command{}, err
	}
	if err := r.recentFailure(creds+ref.String(), "image "+ref.String()); err != nil {
		return Command{}, err
	}
	c, err := r.resolve(ref, creds, ropts)
	if err != nil {
		r.remember(ctx, creds+ref.String(), registry, err)
	}
	return c, err
}

func (r *Resolver) resolve(ref name.Reference, creds string, ropts []remote.Option) (Command, error) {
	digest := ""
	if d, ok := ref.(name.Digest); ok {
		digest = d.DigestStr()
	} else {
		r.mu.Lock()
		if e, ok := r.tags[creds+ref.String()]; ok && r.now().Sub(e.at) < r.TagTTL {
			digest = e.digest
		}
		r.mu.Unlock()
		if digest == "" {
			desc, err := remote.Head(ref, ropts...)
			if err != nil {
				return Command{}, fmt.Errorf("look up %s: %w", ref, err)
			}
			digest = desc.Digest.String()
			r.mu.Lock()
			r.tags[creds+ref.String()] = tagEntry{digest: digest, at: r.now()}
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	c, ok := r.byDigest[creds+digest]
	r.mu.Unlock()
	if ok {
		return c, nil
	}
	img, err := remote.Image(ref.Context().Digest(digest), ropts...)
	if err != nil {
		return Command{}, fmt.Errorf("read %s: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return Command{}, fmt.Errorf("read config of %s: %w", ref, err)
	}
	c = Command{Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Digest: digest}
	r.mu.Lock()
	r.byDigest[creds+digest] = c
	r.mu.Unlock()
	return c, nil
}

// Apply returns the command and args a container runs, with command and args as the
// pod spec gives them (command empty) and the image's c, by Kubernetes' rules: args
// replace the image's CMD; with no ENTRYPOINT the args (or CMD) are the command.
func (c Command) Apply(args []string) (command, newArgs []string, err error) {
	if len(args) == 0 {
		args = c.Cmd
	}
	if len(c.Entrypoint) > 0 {
		return slices.Clone(c.Entrypoint), slices.Clone(args), nil
	}
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("image %s has neither ENTRYPOINT nor CMD", c.Digest)
	}
	return slices.Clone(args), nil, nil
}

// dockerConfig is the shape of .dockerconfigjson ({"auths": {...}}) and of the
// older .dockercfg (the map itself).
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

type secretKeychain struct{ auths map[string]authn.AuthConfig }

func keychain(secrets [][]byte) authn.Keychain {
	k := secretKeychain{auths: map[string]authn.AuthConfig{}}
	for _, s := range secrets {
		var dc dockerConfig
		if json.Unmarshal(s, &dc) != nil || dc.Auths == nil {
			_ = json.Unmarshal(s, &dc.Auths) // .dockercfg; unreadable secrets are skipped
		}
		for host, a := range dc.Auths {
			if _, seen := k.auths[registryHost(host)]; !seen {
				k.auths[registryHost(host)] = a
			}
		}
	}
	return k
}

// registryHost turns the keys found in docker configs ("https://index.docker.io/v1/",
// "registry.example.com:5000") into registry names as go-containerregistry writes them.
func registryHost(key string) string {
	for _, p := range []string{"https://", "http://"} {
		if len(key) > len(p) && key[:len(p)] == p {
			key = key[len(p):]
		}
	}
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			key = key[:i]
			break
		}
	}
	if key == "docker.io" || key == "registry-1.docker.io" {
		return name.DefaultRegistry
	}
	return key
}

func (k secretKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if a, ok := k.auths[res.RegistryStr()]; ok {
		return authn.FromConfig(a), nil
	}
	return authn.Anonymous, nil
}
