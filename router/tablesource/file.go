// Package tablesource feeds routing tables to the router: from a file for standalone use,
// or by watching the manager's Secret with client-go (get/list/watch on that one
// Secret name only, so RBAC resourceNames is enough).
package tablesource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kubeplex/kubeplex/internal/routing"
)

// Apply receives each new table.
type Apply func(*routing.Table) error

// Source runs until ctx ends, calling apply with every table it reads.
type Source interface {
	Run(ctx context.Context, apply Apply) error
}

// DecodeFile parses a table file. A hand-written table need not be sealed; it is
// sealed here so it has a version like the manager's.
func DecodeFile(b []byte) (*routing.Table, error) {
	t, err := routing.Decode(b)
	if err != nil {
		return nil, err
	}
	if t.Version == "" {
		t.Seal()
	}
	return t, nil
}

// File reads the table from a path and re-reads it when its content changes.
type File struct {
	Path string
	// Poll is how often the file is checked for changes [2 s].
	Poll   time.Duration
	Logger *slog.Logger
}

var _ Source = (*File)(nil)

// Run loads the file (an error if the first load fails) and reloads it on change.
func (f *File) Run(ctx context.Context, apply Apply) error {
	poll := f.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	last, err := f.load(apply, nil)
	if err != nil {
		return err
	}
	var bad []byte // the last content refused, so it is reported once
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			b, err := f.load(apply, last)
			if err != nil {
				var rerr *readError
				if errors.As(err, &rerr) && bytes.Equal(rerr.content, bad) {
					continue
				}
				if rerr != nil {
					bad = rerr.content
				}
				log.Error("reload routing table file", "path", f.Path, "err", err)
				continue
			}
			last, bad = b, nil
		}
	}
}

func (f *File) load(apply Apply, last []byte) ([]byte, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return last, fmt.Errorf("read routing table file: %w", err)
	}
	if last != nil && bytes.Equal(b, last) {
		return last, nil
	}
	t, err := DecodeFile(b)
	if err == nil {
		err = apply(t)
	}
	if err != nil {
		return last, &readError{content: b, err: err}
	}
	return b, nil
}

// readError is a table file that was read but refused.
type readError struct {
	content []byte
	err     error
}

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }
