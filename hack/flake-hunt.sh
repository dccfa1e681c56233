#!/usr/bin/env bash
# Flake hunt: run the envtest and process-level test packages several times while
# other processes keep the CPUs busy, the way a shared CI runner (or a laptop doing
# other work) is. A test that passes here only on a quiet machine depends on timing.
#
#   hack/flake-hunt.sh                    # -count=3, one burner per CPU, default packages
#   COUNT=5 BURNERS=1 hack/flake-hunt.sh ./controllers/ ./cmd/manager/
#   RUN=TestLogAppTokenRotation hack/flake-hunt.sh ./controllers/
#
# -count=N also runs each test N times against one shared envtest cluster per
# package, so a test that leaves objects behind that its next run trips over fails
# here too. The burners are plain busy loops started by this script and stopped by it (their
# process ids only) when it ends. Output of each package goes to $OUT/<pkg>.log; the
# summary lists the failing tests with their first failure line.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-3}
BURNERS=${BURNERS:-$(nproc)}
OUT=${OUT:-$(mktemp -d /tmp/flake-hunt.XXXXXX)}
mkdir -p "$OUT"
TIMEOUT=${TIMEOUT:-60m}
pkgs=("$@")
if ((${#pkgs[@]} == 0)); then
  pkgs=(./controllers/ ./cmd/manager/ ./internal/webhook/... ./test/e2e/ ./cmd/router/ ./collector/)
fi
export KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$PWD/bin/k8s/1.37.2}
# test/e2e renders the chart with helm (make test builds it into bin/).
HELM=${HELM:-$(ls "$PWD"/bin/helm-v* 2>/dev/null | head -1)}
export HELM
if [[ ! -x $KUBEBUILDER_ASSETS/kube-apiserver ]]; then
  echo "no kube-apiserver in $KUBEBUILDER_ASSETS: run 'make envtest' first" >&2
  exit 2
fi

burners=()
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_burners EXIT
for ((i = 0; i < BURNERS; i++)); do
  # A busy loop in its own bash: no I/O, just a CPU taken from the tests.
  bash -c 'while :; do :; done' &
  burners+=($!)
done
echo "flake hunt: count=$COUNT, $BURNERS burner(s) on $(nproc) CPU(s), logs in $OUT"

runflag=()
[[ -n ${RUN:-} ]] && runflag=(-run "$RUN")
failed=0
for p in "${pkgs[@]}"; do
  name=${p#./}
  name=${name%/}
  log="$OUT/${name//\//_}.log"
  start=$(date +%s)
  if go test -count="$COUNT" -timeout "$TIMEOUT" "${runflag[@]}" "$p" >"$log" 2>&1; then
    echo "ok    $p ($(($(date +%s) - start))s)"
  else
    failed=1
    echo "FAIL  $p ($(($(date +%s) - start))s): $log"
    # Each failing test with the first line that says why.
    grep -E '^\s*--- FAIL' "$log" | sort | uniq -c | sed 's/^/        /' || true
    grep -E '^\s+[a-z_]+_test\.go:[0-9]+: ' "$log" | head -5 | sed 's/^/        /' || true
  fi
done
exit $failed
