#!/usr/bin/env bash
# Ratios of two bench runs: bench/compare.sh OLD.json NEW.json (the JSON
# make bench writes to bench/out/). Below 1: NEW is lower (faster, leaner),
# except max rps, where above 1 is better.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
	echo "usage: bench/compare.sh OLD.json NEW.json" >&2
	exit 2
fi
exec go run ./bench/perf -compare "$1" "$2"
