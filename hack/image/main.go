// Command image turns static kubeplex binaries into OCI image tarballs without a Docker
// engine or a registry, for `ctr -n k8s.io images import` on a node:
//
//	go run ./hack/image -repo kubeplex -tag 0.1.0 -out dist bin/manager bin/router bin/collector
//
// Each image holds one binary at /<name> (and /entrypoint, as the Dockerfile lays it
// out), runs as user 65532 and is named REPO/<name>:TAG.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kubeplex/kubeplex/hack/image/build"
)

func main() {
	var o build.Options
	flag.StringVar(&o.Repo, "repo", "kubeplex", "image repository prefix")
	flag.StringVar(&o.Tag, "tag", "0.1.0", "image tag")
	out := flag.String("out", "dist", "output folder for the tarballs")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: image [flags] BINARY...")
		os.Exit(2)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, bin := range flag.Args() {
		name := filepath.Base(bin)
		dst := filepath.Join(*out, name+".tar")
		ref, err := build.Tarball(bin, dst, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s -> %s\n", ref, dst)
	}
}
