#!/usr/bin/env bash
# Runs every Go native fuzz test of the module (func FuzzXxx(f *testing.F)),
# one at a time (go test -fuzz takes one package and one target), each for
# the given time. `make fuzz` (part of `make test`) runs each for 3s; run
# this for longer to search further. Inputs that fail are written by go test
# to the package's testdata/fuzz/FuzzXxx/: commit them with the fix, as the
# seed corpora under testdata/fuzz are committed.
#
# Usage: bench/fuzz.sh [fuzztime]        default $FUZZTIME, else 60s
#        FUZZ_PKGS=./pkg/proxy/... bench/fuzz.sh 10m
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
fuzztime=${1:-${FUZZTIME:-60s}}

# Packages with a test file declaring a fuzz test (a cheap text search),
# then their fuzz tests as the test binary lists them.
candidates=()
while read -r pkg dir files; do
	for f in $files; do
		if grep -q '^func Fuzz[A-Za-z0-9_]*(' "$dir/$f"; then
			candidates+=("$pkg")
			break
		fi
	done
done < <($GO list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ${FUZZ_PKGS:-./...})

n=0
failed=()
for pkg in "${candidates[@]}"; do
	names=$($GO test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
	for name in $names; do
		echo "fuzz $pkg $name for $fuzztime"
		if ! $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
			failed+=("$pkg $name")
		fi
		n=$((n + 1))
	done
done
if [ "$n" -eq 0 ]; then
	echo "bench/fuzz.sh: no fuzz tests found in ${FUZZ_PKGS:-./...}" >&2
	exit 1
fi
echo "fuzz: $n fuzz tests ran for $fuzztime each, ${#failed[@]} failed"
if [ "${#failed[@]}" -gt 0 ]; then
	printf '  FAILED: %s\n' "${failed[@]}" >&2
	exit 1
fi
