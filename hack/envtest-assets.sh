#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd, kubectl) from the Go module
# proxy into $1 (default bin/k8s/1.37.2). setup-envtest cannot be used here: it downloads
# release binaries from places this machine cannot reach. A second run only checks files.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/k8s/${KUBE_VERSION#v}}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [[ -x $out/kube-apiserver && -x $out/etcd && -x $out/kubectl ]]; then
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

if [[ ! -x $out/etcd ]]; then
  echo "envtest-assets: building etcd $ETCD_VERSION" >&2
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init envtest/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  go build -trimpath -ldflags='-s -w' -o "$out/etcd" go.etcd.io/etcd/server/v3
fi

if [[ ! -x $out/kube-apiserver || ! -x $out/kubectl ]]; then
  echo "envtest-assets: building kube-apiserver and kubectl $KUBE_VERSION" >&2
  # shellcheck source=hack/kube-build.sh
  source "$root/hack/kube-build.sh"
  kube_build "$out" "$KUBE_VERSION" kube-apiserver kubectl
fi
echo "$out"
