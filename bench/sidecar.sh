#!/usr/bin/env bash
# Sidecar latency and cost against a direct baseline, measured in one run.
# Usage: bench/sidecar.sh [-t 30s] [-qps 1000] [-c 16] [-payload 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
command -v fortio >/dev/null || go install fortio.org/fortio@v1.68.2
go build -o bin/sluice ./cmd/sluice
go run ./bench/sidecar -sluice bin/sluice "$@"
