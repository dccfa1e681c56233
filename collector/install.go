package collector

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Install copies the running binary to dest (mode 0755), for the init container that
// puts the collector into the shared volume the worker's container then runs it from.
// It writes a temporary file and renames it, so dest is never seen half-written.
func Install(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	src, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("open own binary: %w", err)
	}
	defer func() { _ = src.Close() }() // read-only
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("create install directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".collector-*")
	if err != nil {
		return fmt.Errorf("create install file: %w", err)
	}
	// After the rename this finds nothing; before it, a leftover temp file in the
	// shared volume is harmless, so its error is not worth reporting.
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := io.Copy(tmp, src); err != nil {
		_ = tmp.Close() // the copy error is the one worth reporting; the file is removed
		return fmt.Errorf("copy binary: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("make binary executable: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write binary: %w", err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("install binary: %w", err)
	}
	return nil
}

// MakeStateDirs creates each directory world-writable (mode 0777, whatever the
// umask). The webhook mounts them into the workers' containers with subPath, and the
// workers run as any user: without this the kubelet would create them owned by root.
func MakeStateDirs(dirs []string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			return fmt.Errorf("open state directory to the workers: %w", err)
		}
	}
	return nil
}
