#!/usr/bin/env bash
# Router benchmark: router vs rsyslog (Debian) as a TCP syslog relay, plus raw
# loopback, fan-out and history memory. Writes the "## Router" section of
# docs/benchmarks.md. Bounded: about two minutes on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/sbin/rsyslogd ]; then
	echo "installing rsyslog (Debian package) for the comparison" >&2
	apt-get update -qq && apt-get install -y -qq rsyslog >/dev/null
fi
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -o bin/router ./cmd/router
go build -o bin/kubeplex-bench ./hack/bench
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
exec bin/kubeplex-bench -router bin/router -rsyslogd /usr/sbin/rsyslogd -doc docs/benchmarks.md ${BENCH_ARGS:-}
