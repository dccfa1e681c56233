package build

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestTarballRoundTrip(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "router")
	payload := []byte("#!fake binary\x00\x01")
	if err := os.WriteFile(bin, payload, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "router.tar")
	ref, err := Tarball(bin, dst, Options{Repo: "kubeplex", Tag: "9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	if ref != "index.docker.io/kubeplex/router:9.9.9" && ref != "kubeplex/router:9.9.9" {
		t.Fatalf("ref = %q", ref)
	}
	img, err := tarball.ImageFromPath(dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != "/router" || cfg.Config.User != "65532:65532" {
		t.Fatalf("config %+v", cfg.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }() // read-only; the tar walk below reports read errors
	tr := tar.NewReader(rc)
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if !bytes.Equal(b, payload) || h.Mode&0o111 == 0 {
			t.Fatalf("%s: wrong content or not executable", h.Name)
		}
		found[h.Name] = true
	}
	if !found["router"] || !found["entrypoint"] {
		t.Fatalf("layer has %v", found)
	}
	// Same input, same digest: the image is reproducible.
	ref2 := filepath.Join(dir, "again.tar")
	if _, err := Tarball(bin, ref2, Options{Repo: "kubeplex", Tag: "9.9.9"}); err != nil {
		t.Fatal(err)
	}
	img2, _ := tarball.ImageFromPath(ref2, nil)
	d1, _ := img.Digest()
	d2, _ := img2.Digest()
	if d1 != d2 {
		t.Fatalf("digests differ: %s vs %s", d1, d2)
	}
}
