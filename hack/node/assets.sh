#!/usr/bin/env bash
# Builds the node binaries a real single-node cluster needs on top of the envtest assets
# (kube-apiserver, etcd, kubectl in bin/k8s): kubelet, kube-scheduler,
# kube-controller-manager, kube-proxy and CoreDNS, from the Go module proxy, into $1
# (default bin/node/1.37.2). No release download is reachable from these machines, so
# this is the same throwaway-module recipe as hack/envtest-assets.sh. A second run only
# checks files.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/bin/node/${KUBE_VERSION#v}}
mkdir -p "$out"
out=$(cd "$out" && pwd)

kube=(kubelet kube-scheduler kube-controller-manager kube-proxy)
missing=()
for b in "${kube[@]}"; do [[ -x $out/$b ]] || missing+=("$b"); done
if [[ ${#missing[@]} -eq 0 && -x $out/coredns ]]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

if [[ ${#missing[@]} -gt 0 ]]; then
  echo "node-assets: building ${missing[*]} $KUBE_VERSION" >&2
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init node/kube >/dev/null 2>&1
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
  pkgs=()
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$KUBE_VERSION"); done
  go get "${pkgs[@]}" >/dev/null 2>&1
  major=${KUBE_VERSION#v}; major=${major%%.*}
  minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
  done
  for b in "${missing[@]}"; do
    go build -trimpath -ldflags="$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$out/$b.tmp" "$out/$b"
  done
fi

if [[ ! -x $out/coredns ]]; then
  echo "node-assets: building coredns $COREDNS_VERSION" >&2
  GOBIN=$work/gobin go install -trimpath -ldflags='-s -w' "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$work/gobin/coredns" "$out/coredns"
fi
echo "$out"
