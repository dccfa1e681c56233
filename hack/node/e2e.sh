#!/usr/bin/env bash
# make test-e2e: brings the node up (hack/node/up.sh), runs the node suite (test/node,
# build tag "node") against it and tears everything down (hack/node/down.sh) however
# the run ends: success, failure, timeout or Ctrl-C. E2E_RUN narrows the suite
# (go test -run), E2E_KEEP=1 leaves the node up for a look (down.sh later).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ ${E2E_KEEP:-} == 1 ]]; then
    log "E2E_KEEP=1: node left up; source $NODE_DIR/env, then hack/node/down.sh"
  else
    if ((rc != 0)) && [[ -d $NODE_DIR/logs ]]; then
      rm -rf "$root/dist/e2e-logs" && mkdir -p "$root/dist" && cp -r "$NODE_DIR/logs" "$root/dist/e2e-logs"
      log "node logs kept in $root/dist/e2e-logs"
    fi
    "$here/down.sh" || rc=1
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One node per machine (fixed address, state dir, iptables chains): a second run waits
# for the first instead of tearing its node down under it.
exec 9>"${NODE_DIR}.lock"
if ! flock -n 9; then
  log "another make test-e2e holds ${NODE_DIR}.lock; waiting for it"
  flock 9
fi

if [[ -e $NODE_DIR ]]; then
  log "a previous node was left behind; tearing it down first"
  "$here/down.sh"
fi
t0=$(date +%s)
"$here/up.sh"
log "bring-up took $(($(date +%s) - t0))s"
# shellcheck source=/dev/null
source "$NODE_DIR/env"
export HELM=${HELM:-$root/bin/helm-v3.22.0}
cd "$root"
go test -tags node -count=1 -timeout "${E2E_TIMEOUT:-40m}" -v ${E2E_RUN:+-run "$E2E_RUN"} ./test/node/ 2>&1 | tee "$NODE_DIR/logs/suite.log"
