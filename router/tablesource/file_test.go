package tablesource_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/tablesource"
)

type recorder struct{ ch chan *routing.Table }

func newRecorder() *recorder { return &recorder{ch: make(chan *routing.Table, 16)} }

func (r *recorder) apply(t *routing.Table) error {
	r.ch <- t
	return nil
}

func (r *recorder) next(t *testing.T) *routing.Table {
	t.Helper()
	select {
	case tbl := <-r.ch:
		return tbl
	case <-time.After(30 * time.Second):
		t.Fatal("no table applied")
		return nil
	}
}

func TestFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routes.json")
	write := func(apps ...routing.App) {
		b, _ := json.Marshal(routing.Table{Apps: apps})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(routing.App{ID: "a/one", Tokens: []routing.Token{{Token: "t.x", Source: "app"}}})
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- (&tablesource.File{Path: path, Poll: 10 * time.Millisecond}).Run(ctx, rec.apply) }()
	first := rec.next(t)
	if first.Version == "" || len(first.Apps) != 1 {
		t.Fatalf("first table %+v", first)
	}
	// A broken file is refused; the next good one is applied.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	write(routing.App{ID: "a/one"}, routing.App{ID: "a/two"})
	second := rec.next(t)
	if len(second.Apps) != 2 || second.Version == first.Version {
		t.Fatalf("second table %+v", second)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFileMissing(t *testing.T) {
	err := (&tablesource.File{Path: filepath.Join(t.TempDir(), "nope.json")}).Run(context.Background(), newRecorder().apply)
	if err == nil {
		t.Fatal("missing file accepted")
	}
}
