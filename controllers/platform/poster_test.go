package platform

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// TestPosterUnknownAppDoesNotBlock: a line for an app the routers do not know (a
// deleted one) is given up after NotFoundFor, and the lines behind it are delivered.
func TestPosterUnknownAppDoesNotBlock(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app := r.Header.Get(routing.PlatformAppHeader)
		if app == "shop/gone" {
			http.Error(w, "Unknown app", http.StatusNotFound)
			return
		}
		mu.Lock()
		got[app]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	p := &Poster{URL: srv.URL, Token: func(context.Context) (string, error) { return "p.x", nil },
		RetryFor: time.Hour, NotFoundFor: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Start(ctx) }()
	p.Emit(Line{App: "shop/gone", Proc: "api", Text: "LogApp gone deleted"})
	p.Emit(Line{App: "shop/web", Proc: "api", Text: "LogDrain archive created"})
	testenv.Eventually(t, "the line behind the unknown app's", func() error {
		mu.Lock()
		defer mu.Unlock()
		if sent, dropped := p.Counts(); got["shop/web"] != 1 || sent != 1 || dropped != 1 {
			return fmt.Errorf("delivered %v; sent %d dropped %d, want 1 and 1", got, sent, dropped)
		}
		return nil
	})
}

// TestPosterEmitWhen: a held line goes once its condition holds (or its wait ends),
// the app's later lines wait behind it, other apps' lines do not.
func TestPosterEmitWhen(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := wire.ReadBatch(r, 1<<20, 0, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rec := range b.Records {
			m, err := wire.Parse(rec)
			if err != nil {
				m.Text = []byte(err.Error())
			}
			got = append(got, r.Header.Get(routing.PlatformAppHeader)+" "+string(m.Text))
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	p := &Poster{URL: srv.URL, Token: func(context.Context) (string, error) { return "p.x", nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = p.Start(ctx) }()
	var ready atomic.Bool
	p.EmitWhen(Line{App: "shop/web", Proc: "router", Text: "Drain d.1 added"}, ready.Load, time.Hour)
	p.Emit(Line{App: "shop/web", Proc: "router", Text: "Drain d.1 removed"})
	p.Emit(Line{App: "shop/other", Proc: "api", Text: "LogApp other created"})
	p.EmitWhen(Line{App: "shop/late", Proc: "router", Text: "Drain d.2 added"}, func() bool { return false }, time.Millisecond)
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	testenv.Until(t, "the other apps' lines", func() bool { return len(snapshot()) == 2 })
	if s := snapshot(); !slices.Contains(s, "shop/other LogApp other created") || !slices.Contains(s, "shop/late Drain d.2 added") {
		t.Fatalf("first lines %q", s)
	}
	ready.Store(true)
	testenv.Until(t, "the held line and the one behind it", func() bool { return len(snapshot()) == 4 })
	if s := snapshot(); s[2] != "shop/web Drain d.1 added" || s[3] != "shop/web Drain d.1 removed" {
		t.Errorf("order %q", s)
	}
}
