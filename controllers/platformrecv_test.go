package controllers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/wire"
)

// platformReceiver stands in for the routers' POST /logs: it keeps every platform
// line the manager's Poster sends, as "APP SOURCE[PROC] TEXT".
type platformReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	lines []string
}

func newPlatformReceiver(t *testing.T) *platformReceiver {
	t.Helper()
	r := &platformReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, ok := wire.RequestToken(req); !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		b, err := wire.ReadBatch(req, 0, 0, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		app := req.Header.Get(routing.PlatformAppHeader)
		r.mu.Lock()
		for _, rec := range b.Records {
			if f, err := wire.Scan(rec); err == nil {
				r.lines = append(r.lines, fmt.Sprintf("%s %s[%s] %s", app, f.AppName, f.ProcID, f.Text))
			}
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *platformReceiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}
