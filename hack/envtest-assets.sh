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
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init envtest/kube >/dev/null 2>&1
  # kubernetes' own go.mod requires its staging modules at v0.0.0 and replaces them with
  # local paths; a consumer must replace each with the published tag instead.
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging=${KUBE_VERSION/#v1./v0.}
  {
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    grep -E $'^\tk8s\\.io/\\S+ v0\\.0\\.0$' "$gomod" | awk '{print $1}' |
      grep -vE 'sample-cli-plugin|sample-controller' |
      while read -r m; do echo "replace $m => $m $staging"; done
  } >>go.mod
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION" >/dev/null 2>&1
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  done
  go build -trimpath -ldflags="$ldflags" -o "$out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags="$ldflags" -o "$out/kubectl" k8s.io/kubernetes/cmd/kubectl
fi
echo "$out"
