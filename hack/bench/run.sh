#!/usr/bin/env bash
# Router benchmark: router vs rsyslog (Debian) as a TCP syslog relay, plus raw
# loopback, fan-out and history memory, then log sessions (hack/bench/sessions).
# Writes the "## Router" and "## Log sessions" sections of docs/benchmarks.md.
# Bounded: about four minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/sbin/rsyslogd ]; then
	echo "installing rsyslog (Debian package) for the comparison" >&2
	apt-get update -qq && apt-get install -y -qq rsyslog >/dev/null
fi
# Binaries go to a private directory: bin/ may be shared between worktrees.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CGO_ENABLED=0 go build -trimpath -o "$out/router" ./cmd/router
go build -o "$out/kubeplex-bench" ./hack/bench
go build -o "$out/kubeplex-session-bench" ./hack/bench/sessions
# BENCH_ARGS=-baseline=PATH adds rows for another router binary (before/after in one run).
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$out/kubeplex-bench" -router "$out/router" -rsyslogd /usr/sbin/rsyslogd -doc docs/benchmarks.md ${BENCH_ARGS:-}
# shellcheck disable=SC2086 # SESSION_BENCH_ARGS is a list of flags
"$out/kubeplex-session-bench" -router "$out/router" -doc docs/benchmarks.md ${SESSION_BENCH_ARGS:-}
