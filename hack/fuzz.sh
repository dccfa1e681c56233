#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $1 (default 30s) each. The seed corpora
# already run as plain tests in `make test`; this explores beyond them.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u | while read -r dir; do
  for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    echo "== $dir $f"
    go test "$dir" -run '^$' -fuzz "^$f\$" -fuzztime "$t"
  done
done
