// Package secretvol lays out a directory the way the kubelet's atomic writer lays out
// a Secret volume, for tests of the collector's token file: each version of the data
// lives in a timestamped directory, `..data` is a symlink to the current one, and
// every key is a symlink `KEY -> ..data/KEY`. An update writes a new timestamped
// directory and renames a fresh symlink over `..data`, so a reader sees the old or
// the new version, never a mix, and the path of a key resolves to a new inode.
package secretvol

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

var seq atomic.Int64

// Write publishes data (key → value) in dir as a new version and removes the
// previous one, as the kubelet does after a Secret changed.
func Write(dir string, data map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create volume dir: %w", err)
	}
	old, _ := os.Readlink(filepath.Join(dir, "..data"))
	ts := fmt.Sprintf("..%s.%d", time.Now().UTC().Format("2006_01_02_15_04_05"), seq.Add(1))
	if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
		return fmt.Errorf("create version dir: %w", err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, ts, k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("write key: %w", err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		return fmt.Errorf("link version: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return fmt.Errorf("swap ..data: %w", err)
	}
	for k := range data {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
			return fmt.Errorf("link key: %w", err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(dir, old)); err != nil {
			return fmt.Errorf("remove old version: %w", err)
		}
	}
	return nil
}
