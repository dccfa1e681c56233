package tablesource_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// errorLog is a slog handler that hands each error record's message and "err" to the
// test, so a test can wait for a source to report a refusal instead of sleeping.
type errorLog struct{ ch chan string }

func newErrorLog() *errorLog { return &errorLog{ch: make(chan string, 64)} }

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *errorLog) WithGroup(string) slog.Handler                 { return l }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	select {
	case l.ch <- msg:
	default: // the test reads only the first few
	}
	return nil
}

// next waits for the next error logged.
func (l *errorLog) next(t *testing.T) string {
	t.Helper()
	select {
	case msg := <-l.ch:
		return msg
	case <-time.After(30 * time.Second):
		t.Fatal("no error logged")
		return ""
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
	errs := newErrorLog()
	src := &tablesource.File{Path: path, Poll: 10 * time.Millisecond, Logger: slog.New(errs)}
	go func() { done <- src.Run(ctx, rec.apply) }()
	first := rec.next(t)
	if first.Version == "" || len(first.Apps) != 1 {
		t.Fatalf("first table %+v", first)
	}
	// A broken file is refused; the next good one is applied.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg := errs.next(t); !strings.Contains(msg, "reload routing table file") || !strings.Contains(msg, "decode") {
		t.Fatalf("logged %q, want the broken file's refusal", msg)
	}
	select {
	case tbl := <-rec.ch:
		t.Fatalf("broken file applied as %+v", tbl)
	default:
	}
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
