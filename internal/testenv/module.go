package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// BuildModule builds the main package of the nested Go module in dir (relative to
// the repository root, e.g. "test/otelcol") into bin/<name>-<hash of its sources>,
// once: later calls, from any test package or worktree sharing bin/, reuse the
// binary. Nested modules keep heavy test-only dependencies (the OpenTelemetry
// Collector) out of the main go.mod; a cold build downloads them from the module
// proxy, which takes a minute or two.
func BuildModule(dir, name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	src := filepath.Join(root, dir)
	sum, err := hashSources(src)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	binDir := filepath.Join(root, "bin")
	out := filepath.Join(binDir, name+"-"+sum)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	// Built under a temporary name and renamed: two packages building at once each
	// get a whole binary, and the rename makes one of them the cached one.
	tmp, err := os.CreateTemp(binDir, "."+name+"-*")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	_ = tmp.Close()
	defer func() { _ = os.Remove(tmp.Name()) }()
	cmd := exec.Command("go", "build", "-o", tmp.Name(), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", dir, err, b)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", fmt.Errorf("build %s: %w", dir, err)
	}
	return out, nil
}

// hashSources hashes go.mod, go.sum and the .go files of a module (not its tests).
func hashSources(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if !d.IsDir() && (n == "go.mod" || n == "go.sum" || (strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go"))) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, f)
		_, _ = fmt.Fprintf(h, "%s %d\n", rel, len(b)) // a hash takes every write
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
