# Sourced by hack/envtest-assets.sh and hack/node/assets.sh: builds commands of
# k8s.io/kubernetes from the Go module proxy. No release download is reachable from
# these machines, so both build from source in a throwaway module.

# kube_build OUT VERSION CMD... builds k8s.io/kubernetes/cmd/CMD at VERSION into OUT/CMD
# (written under a temporary name first, so an interrupted build leaves no binary that
# a later run would take as done). The caller sets up a temporary directory as $work.
kube_build() {
  local out=$1 version=$2
  shift 2
  mkdir -p "$work/kube" && (
    cd "$work/kube"
    export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
    go mod init kubeplex-build/kube >/dev/null 2>&1
    # kubernetes' own go.mod requires its staging modules at v0.0.0 and replaces them
    # with local paths; a consumer must replace each with the published tag instead.
    local gomod staging
    gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    staging=${version/#v1./v0.}
    {
      echo "require k8s.io/kubernetes $version"
      grep -E $'^\tk8s\\.io/\\S+ v0\\.0\\.0$' "$gomod" | awk '{print $1}' |
        grep -vE 'sample-cli-plugin|sample-controller' |
        while read -r m; do echo "replace $m => $m $staging"; done
    } >>go.mod
    local pkgs=() b
    for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b@$version"); done
    go get "${pkgs[@]}" >/dev/null 2>&1
    local major minor ldflags="-s -w" p
    major=${version#v}; major=${major%%.*}
    minor=${version#v*.}; minor=${minor%%.*}
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    done
    for b in "$@"; do
      go build -trimpath -ldflags="$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
      mv "$out/$b.tmp" "$out/$b"
    done
  )
}
