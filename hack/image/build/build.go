// Package build makes single-binary OCI images with go-containerregistry.
package build

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Options name the image.
type Options struct {
	Repo string
	Tag  string
}

// Tarball writes an image holding binary to dst and returns its reference.
func Tarball(binary, dst string, o Options) (string, error) {
	base := filepath.Base(binary)
	ref, err := name.NewTag(fmt.Sprintf("%s/%s:%s", o.Repo, base, o.Tag), name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image name for %s: %w", base, err)
	}
	data, err := os.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("read binary: %w", err)
	}
	layerTar, err := layer(map[string][]byte{base: data, "entrypoint": data})
	if err != nil {
		return "", err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return "", fmt.Errorf("make layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return "", fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config = v1.Config{Entrypoint: []string{"/" + base}, User: "65532:65532", WorkingDir: "/"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", fmt.Errorf("set config: %w", err)
	}
	if err := tarball.WriteToFile(dst, ref, img); err != nil {
		return "", fmt.Errorf("write %s: %w", dst, err)
	}
	return ref.String(), nil
}

// layer builds an uncompressed tar with the given executables at the root.
func layer(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Sorted names and a fixed mtime make the layer, and so the digest, reproducible.
	names := slices.Sorted(maps.Keys(files))
	epoch := time.Unix(0, 0)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n])), ModTime: epoch, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header: %w", err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, fmt.Errorf("tar body: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}
