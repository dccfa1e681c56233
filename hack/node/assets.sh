#!/usr/bin/env bash
# Builds the node binaries a real single-node cluster needs on top of the envtest assets
# (kube-apiserver, etcd, kubectl in bin/k8s): kubelet, kube-scheduler,
# kube-controller-manager, kube-proxy and CoreDNS, from the Go module proxy, into $1
# (default bin/node/1.37.2). No release download is reachable from these machines, so
# both build through hack/kube-build.sh. A second run only
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
  # shellcheck source=hack/kube-build.sh
  source "$root/hack/kube-build.sh"
  kube_build "$out" "$KUBE_VERSION" "${missing[@]}"
fi

if [[ ! -x $out/coredns ]]; then
  echo "node-assets: building coredns $COREDNS_VERSION" >&2
  GOBIN=$work/gobin go install -trimpath -ldflags='-s -w' "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$work/gobin/coredns" "$out/coredns"
fi
echo "$out"
