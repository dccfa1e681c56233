package dispatch_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/router/dispatch"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// fakeOwners decides ownership by a flag; its forwarders either refuse every batch
// until stopped (as when no owner takes it) or take it.
type fakeOwners struct {
	owns   atomic.Bool
	refuse bool
	mu     sync.Mutex
	took   []string
}

func (o *fakeOwners) Owns(string) bool { return o.owns.Load() }
func (o *fakeOwners) Forwarder(*drain.Config, drain.Env, bool) drain.Drain {
	return &fakeForwarder{o: o}
}

func (o *fakeOwners) got() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.took...)
}

type fakeForwarder struct{ o *fakeOwners }

func (*fakeForwarder) Forwards()            {}
func (*fakeForwarder) Close() error         { return nil }
func (*fakeForwarder) Limits() drain.Limits { return drain.Limits{Messages: 4096, Bytes: 256 << 10} }
func (f *fakeForwarder) Deliver(ctx context.Context, b *drain.Batch) (int, error) {
	f.o.mu.Lock()
	for i := range b.Len() {
		fr := string(b.Frame(i))
		f.o.took = append(f.o.took, fr[strings.LastIndexByte(fr, ' ')+1:])
	}
	f.o.mu.Unlock()
	if !f.o.refuse {
		return b.Len(), nil
	}
	<-ctx.Done()
	return 0, errors.Join(drain.ErrUnsent, ctx.Err())
}

func ownedDispatcher(t *testing.T, o *fakeOwners) *dispatch.Dispatcher {
	t.Helper()
	d := dispatch.New(dispatch.Options{
		Dialer: &drain.Dialer{Policy: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		Logger: slog.New(slog.DiscardHandler), Router: "test", Owners: o,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		d.Shutdown(ctx)
	})
	return d
}

// TestReownHandsOverUnsentBatch: at an ownership move, the batch the drain's runner
// had taken and not begun to send goes to the runner of the other kind instead of
// being dropped: a forwarder whose batch no owner took becomes an owner and
// delivers it itself; an owner that could not connect becomes a forwarder and
// forwards it. Each line arrives once, in order, and nothing is counted dropped.
func TestReownHandsOverUnsentBatch(t *testing.T) {
	t.Run("forwarder becomes owner", func(t *testing.T) {
		o := &fakeOwners{refuse: true}
		d := ownedDispatcher(t, o)
		sink := drainpeer.NewSyslogSink(t, nil)
		apply(t, d, routing.App{ID: "ns/a", Tokens: []routing.Token{{Token: tok1, Source: "app"}},
			Drains: []routing.Drain{{ID: "ns/d", Token: dt1, URL: "syslog://" + sink.Addr}}})
		publish(t, d, tok1, "a", "b")
		testenv.Until(t, "the forwarder holds the batch", func() bool { return len(o.got()) == 2 })
		publish(t, d, tok1, "c")
		o.owns.Store(true)
		if n := d.Reown(); n != 1 {
			t.Fatalf("Reown moved %d drains, want 1", n)
		}
		if got := strings.Join(texts(sink.WaitFor(t, 3)), " "); got != "app[web.1] a app[web.1] b app[web.1] c" {
			t.Errorf("owner delivered %q", got)
		}
		testenv.Until(t, "3 counted delivered", func() bool { return d.Status().Drains["ns/d"].Delivered == 3 })
		if st := d.Status().Drains["ns/d"]; st.Dropped != 0 {
			t.Errorf("status %+v, want 3 delivered, none dropped", st)
		}
	})
	t.Run("owner becomes forwarder", func(t *testing.T) {
		o := &fakeOwners{}
		o.owns.Store(true)
		d := ownedDispatcher(t, o)
		apply(t, d, routing.App{ID: "ns/a", Tokens: []routing.Token{{Token: tok1, Source: "app"}},
			Drains: []routing.Drain{{ID: "ns/d", Token: dt1, URL: "syslog://" + testenv.FreeAddr(t)}}})
		publish(t, d, tok1, "a", "b")
		testenv.Until(t, "the owner fails to connect", func() bool { return d.Status().Drains["ns/d"].LastError != "" })
		o.owns.Store(false)
		if n := d.Reown(); n != 1 {
			t.Fatalf("Reown moved %d drains, want 1", n)
		}
		testenv.Until(t, "the forwarder took the lines", func() bool { return len(o.got()) >= 2 })
		if got := strings.Join(o.got(), " "); got != "a b" {
			t.Errorf("forwarded %q, want a b", got)
		}
		testenv.Until(t, "2 counted forwarded", func() bool { return d.Status().Drains["ns/d"].Forwarded == 2 })
		if st := d.Status().Drains["ns/d"]; st.Dropped != 0 {
			t.Errorf("status %+v, want 2 forwarded, none dropped", st)
		}
	})
	// An HTTP drain's request in flight is not cut by the move: it completes while
	// the forwarder already takes the lines queued behind it.
	t.Run("http owner becomes forwarder", func(t *testing.T) {
		o := &fakeOwners{}
		o.owns.Store(true)
		d := ownedDispatcher(t, o)
		arrived, release := make(chan string, 4), make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- r.Header.Get("Logplex-Msg-Count")
			<-release
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		defer close(release)
		apply(t, d, routing.App{ID: "ns/a", Tokens: []routing.Token{{Token: tok1, Source: "app"}},
			Drains: []routing.Drain{{ID: "ns/d", Token: dt1, URL: srv.URL + "/logs"}}})
		publish(t, d, tok1, "a", "b")
		select {
		case n := <-arrived:
			if n != "2" {
				t.Fatalf("the request in flight carries %s lines, want 2", n)
			}
		case <-time.After(time.Minute):
			t.Fatal("the HTTP drain never got its request")
		}
		publish(t, d, tok1, "c")
		o.owns.Store(false)
		if n := d.Reown(); n != 1 {
			t.Fatalf("Reown moved %d drains, want 1", n)
		}
		testenv.Until(t, "the forwarder took c", func() bool { return strings.Join(o.got(), " ") == "c" })
		if st := d.Status().Drains["ns/d"]; st.Delivered != 0 || st.Dropped != 0 {
			t.Errorf("status %+v while the request is held, want none delivered or dropped", st)
		}
		release <- struct{}{}
		testenv.Until(t, "the held request counted delivered", func() bool { return d.Status().Drains["ns/d"].Delivered == 2 })
		if st := d.Status().Drains["ns/d"]; st.Dropped != 0 || st.Forwarded != 1 {
			t.Errorf("status %+v, want 2 delivered, 1 forwarded, none dropped", st)
		}
		select {
		case n := <-arrived:
			t.Errorf("the drain got another request (%s lines) after the move", n)
		default:
		}
	})
}
