#!/usr/bin/env bash
# The data-plane benchmark (make bench; bench/README.md): sluice's sidecar,
# two sidecars with mTLS, its router, and nginx, HAProxy and Caddy, each
# against a direct baseline measured in the same run.
# Usage: bench/perf.sh [-t 10s] [-qps 1000] [-c 16] [-paths sidecar,nginx] [-protocols http1,h2c]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
command -v fortio >/dev/null || go install fortio.org/fortio@v1.68.2
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed to pin the proxies to a core" >&2; exit 1; }
missing=()
for p in nginx:nginx-light haproxy:haproxy caddy:caddy; do
	command -v "${p%%:*}" >/dev/null || missing+=("${p#*:}")
done
if ((${#missing[@]})); then
	if [ "$(id -u)" != 0 ]; then
		echo "bench: the peers are Debian packages: apt-get install ${missing[*]}" >&2
		exit 1
	fi
	echo "bench: installing ${missing[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
go build -o bin/sluice ./cmd/sluice
exec go run ./bench/perf -sluice bin/sluice "$@"
