package platform

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
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
