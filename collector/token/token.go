// Package token keeps the collector's ingest token current when it comes from a
// file. In a pod that file is a Secret volume: the kubelet rewrites it some time after
// the Secret changes (a token rotation, docs/architecture.md "Tokens"), whereas an
// environment variable keeps the value it had when the container started, and the
// router refuses a rotated-out token once its grace period ends.
package token

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultInterval is how often File.Token looks at the file for a new token.
const DefaultInterval = 30 * time.Second

// File is a token read from a file and re-read when it changes. Safe for concurrent use.
type File struct {
	path     string
	interval time.Duration

	mu      sync.Mutex
	token   string
	info    os.FileInfo // of the file the token was read from
	checked time.Time
}

// Open reads the token at path. interval is how often Token checks the file for a
// change (0 means DefaultInterval). A missing, unreadable or empty file is an error:
// the kubelet populates a Secret volume before the container starts, so at start this
// is a configuration mistake, better reported than shipped as 401s.
func Open(path string, interval time.Duration) (*File, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	f := &File{path: path, interval: interval}
	tok, info, err := f.read()
	if err != nil {
		return nil, err
	}
	f.token, f.info, f.checked = tok, info, time.Now()
	return f, nil
}

// Path is the file the token comes from.
func (f *File) Path() string { return f.path }

// Token returns the current token. At most once per interval it first stats the
// file and re-reads it if it is another file or was modified: the kubelet's atomic
// writer swaps the ..data symlink to a new directory, so the path resolves to a new
// inode after each update. A failed check keeps the token in hand.
func (f *File) Token() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now := time.Now(); now.Sub(f.checked) >= f.interval {
		f.checked = now
		if info, err := os.Stat(f.path); err == nil && !sameVersion(info, f.info) {
			// On an error reloadLocked keeps the token in hand, which is all a
			// caller of Token can use; the next check or a 401's Reload tries again.
			_, _ = f.reloadLocked()
		}
	}
	return f.token
}

// Reload re-reads the file now, whatever its metadata says, and reports whether the
// token changed. The shipper calls it when the router answers 401. On an error the
// token in hand is kept.
func (f *File) Reload() (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = time.Now()
	return f.reloadLocked()
}

func (f *File) reloadLocked() (bool, error) {
	tok, info, err := f.read()
	if err != nil {
		return false, err
	}
	changed := tok != f.token
	f.token, f.info = tok, info
	return changed, nil
}

// read returns the token in the file and the metadata of the file it read. Errors
// name the path, never the content.
func (f *File) read() (string, os.FileInfo, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return "", nil, fmt.Errorf("read token file: %w", err)
	}
	defer func() { _ = fh.Close() }() // read-only
	info, err := fh.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("read token file: %w", err)
	}
	// A token is a few dozen bytes; a bound keeps a wrong path from eating memory.
	const maxSize = 4096
	b, err := io.ReadAll(io.LimitReader(fh, maxSize+1))
	if err != nil {
		return "", nil, fmt.Errorf("read token file %s: %w", f.path, err)
	}
	if len(b) > maxSize {
		return "", nil, fmt.Errorf("read token file %s: larger than %d bytes", f.path, maxSize)
	}
	// Secrets hold the token bare; a hand-written file usually ends in a newline.
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", nil, fmt.Errorf("read token file %s: empty", f.path)
	}
	return tok, info, nil
}

// sameVersion reports whether a and b describe the same file, unmodified.
func sameVersion(a, b os.FileInfo) bool {
	return b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
