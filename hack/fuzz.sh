#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $1 (default 30s) each. The seed corpora
# (f.Add seeds and testdata/fuzz/<Target>/ files) already run as plain tests in
# `make test`; this explores beyond them. A target that finds a failure writes the
# input under its package's testdata/fuzz/<Target>/ (commit it with the fix: it then
# runs in make test for good); the script goes on with the other targets and exits 1
# at the end if any failed.
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
while read -r dir; do
  for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    if [ -n "${FUZZ_ONLY:-}" ] && ! [[ "$dir $f" =~ $FUZZ_ONLY ]]; then continue; fi
    if [ -n "${FUZZ_LIST:-}" ]; then echo "$dir $f"; continue; fi
    echo "== $(date -u +%H:%M:%S) $dir $f ($t)"
    if ! go test "$dir" -run '^$' -fuzz "^$f\$" -fuzztime "$t" "${par[@]}"; then
      failed+=("$dir $f")
    fi
  done
done < <(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./bin/' | xargs -n1 dirname | sort -u)
if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
