#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $1 (default 30s) each. The seed corpora
# (f.Add seeds and testdata/fuzz/<Target>/ files) already run as plain tests in
# `make test`; this explores beyond them. A target that finds a failure writes the
# input under its package's testdata/fuzz/<Target>/ (commit it with the fix: it then
# runs in make test for good); the script goes on with the other targets and exits 1
# at the end if any failed, after repeating each failure's report and input (so
# that the end of a long CI log, which may be all that is kept, says what failed).
#
#   FUZZ_ONLY=regexp   run only targets whose "<dir> <Target>" matches
#   FUZZ_PARALLEL=n    fuzzing workers per target (default: GOMAXPROCS)
#   FUZZ_LIST=1        list the targets and exit
set -uo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
par=()
[ -n "${FUZZ_PARALLEL:-}" ] && par=(-parallel "$FUZZ_PARALLEL")
failed=()
faillogs=()
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
while read -r dir; do
  for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    if [ -n "${FUZZ_ONLY:-}" ] && ! [[ "$dir $f" =~ $FUZZ_ONLY ]]; then continue; fi
    if [ -n "${FUZZ_LIST:-}" ]; then echo "$dir $f"; continue; fi
    echo "== $(date -u +%H:%M:%S) $dir $f ($t)"
    log="$logs/${#failed[@]}-$f.log"
    if ! go test "$dir" -run '^$' -fuzz "^$f\$" -fuzztime "$t" "${par[@]}" 2>&1 | tee "$log"; then
      failed+=("$dir $f")
      faillogs+=("$log")
    fi
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./bin/' | xargs -n1 dirname | sort -u)
if ((${#failed[@]})); then
  for i in "${!failed[@]}"; do
    echo "==== FAILED ${failed[$i]}" >&2
    grep -A 25 -e '--- FAIL' "${faillogs[$i]}" | head -n 40 >&2
    dir=${failed[$i]%% *}
    for input in $(sed -n 's/.*Failing input written to \(testdata\/fuzz\/[^ ]*\).*/\1/p' "${faillogs[$i]}"); do
      echo "---- input $dir/$input:" >&2
      head -c 2000 "$dir/$input" >&2
      echo >&2
    done
  done
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
