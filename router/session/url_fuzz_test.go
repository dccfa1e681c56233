package session

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/session"
	"github.com/kubeplex/kubeplex/router/dispatch"
)

// FuzzSessionURL: whatever path, Accept and Last-Event-ID a client sends to
// /sessions/, a session is served only for an id that verifies with the keys, and
// anything else is a refusal (404, 403, 405, 406), never a panic.
func FuzzSessionURL(f *testing.F) {
	tbl := routing.Table{Apps: []routing.App{{ID: "shop/web"}}, SessionKeys: testKeys}
	tbl.Seal()
	d := dispatch.New(dispatch.Options{Logger: slog.New(slog.DiscardHandler), Router: "r"})
	if err := d.Apply(&tbl); err != nil {
		f.Fatal(err)
	}
	h := New(d, StaticPeers(nil), Options{}, nil, nil, slog.New(slog.DiscardHandler))
	h.SetKeys(tbl.SessionKeys)
	id, err := session.Sign(session.Claims{Namespace: "shop", App: "web", Lines: 5}, testKeys, time.Now(), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(id, "text/plain", "")
	f.Add(id, "text/event-stream", "1764064800123456")
	f.Add(id+"%2e%2e", "", "")
	f.Add("../../status", "text/html", "x")
	f.Add(id[:len(id)-3]+"AAA", "application/x-ndjson", "-1")
	f.Fuzz(func(t *testing.T, rawID, accept, lastEventID string) {
		u, err := url.Parse("http://router" + Path + rawID)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req := (&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}).WithContext(ctx)
		req.Header.Set("Accept", accept)
		req.Header.Set("Last-Event-ID", lastEventID)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			if _, err := session.Verify(rawID, testKeys, time.Now()); err != nil {
				t.Fatalf("served %q, which does not verify: %v", rawID, err)
			}
		case http.StatusNotFound, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotAcceptable:
		default:
			t.Fatalf("%q (Accept %q): status %d", rawID, accept, w.Code)
		}
	})
}
