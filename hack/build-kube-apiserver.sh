#!/usr/bin/env bash
# Builds kube-apiserver from k8s.io/kubernetes at KUBE_VERSION (default
# v1.36.3) with only the Go module proxy, into
#   ${SLUICE_KUBE_CACHE:-~/.cache/sluice/kube}/$KUBE_VERSION/kube-apiserver
# and prints that path. Skips the build when the binary is already there
# (the cache is keyed by version). internal/kubetest runs it when the binary
# is missing; .ci/run runs it before `make test`.
#
# k8s.io/kubernetes cannot be built as a plain dependency: its go.mod
# requires every k8s.io/* staging module at v0.0.0 and replaces it with
# ./staging/src/k8s.io/<name>, and replace directives of a dependency are
# ignored. So this makes a throw-away main module that requires
# k8s.io/kubernetes $KUBE_VERSION and replaces each of those staging modules
# with its published copy k8s.io/<name> v0.<minor>.<patch> (what Kubernetes
# tags as kubernetes-1.<minor>.<patch> in each staging repository), with the
# go and godebug lines of Kubernetes' own go.mod, then builds
# cmd/kube-apiserver as Kubernetes' hack/lib/golang.sh does for a release
# (CGO_ENABLED=0, -trimpath, -s -w, version stamped as hack/lib/version.sh
# does).
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.36.3}"
CACHE="${SLUICE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kube}"
OUT_DIR="$CACHE/$KUBE_VERSION"
OUT="$OUT_DIR/kube-apiserver"
GO="${GO:-go}"

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi

case "$KUBE_VERSION" in
  v1.*.*) ;;
  *) echo "build-kube-apiserver: KUBE_VERSION $KUBE_VERSION is not v1.MINOR.PATCH" >&2; exit 1;;
esac
STAGING_VERSION="v0.${KUBE_VERSION#v1.}"   # v1.36.3 -> v0.36.3
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"

mkdir -p "$OUT_DIR"
work="$(mktemp -d "$OUT_DIR/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
echo "build-kube-apiserver: building kube-apiserver $KUBE_VERSION (staging modules $STAGING_VERSION) into $OUT; this takes minutes" >&2

# Kubernetes' own go.mod, from the module proxy.
kmod="$(cd "$work" && GOFLAGS="-mod=mod -buildvcs=false" "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
if [ ! -f "$kmod" ]; then
  echo "build-kube-apiserver: go mod download k8s.io/kubernetes@$KUBE_VERSION gave no go.mod" >&2
  exit 1
fi
goline="$(grep -m1 '^go ' "$kmod")"
godebug="$(grep -m1 '^godebug ' "$kmod" || true)"
staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/src/.*#\1#p' "$kmod")"
if [ -z "$staging" ]; then
  echo "build-kube-apiserver: no ./staging replaces in $kmod" >&2
  exit 1
fi

{
  echo "module sluice.local/kube-apiserver-build"
  echo
  echo "$goline"
  [ -n "$godebug" ] && echo "$godebug"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $STAGING_VERSION"; done
  echo ")"
} > "$work/go.mod"
cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO

stamp="k8s.io/component-base/version"
cstamp="k8s.io/client-go/pkg/version"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for p in "$stamp" "$cstamp"; do
  ldflags="$ldflags -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags="$ldflags -X $p.gitTreeState=clean -X $p.buildDate=$now"
done

cd "$work"
# go mod tidy resolves the graph and writes go.sum (checked against the
# checksum database like any download); -e: test-only imports of far-away
# packages do not stop it.
GOFLAGS="-mod=mod -buildvcs=false" "$GO" mod tidy -e
CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags "$ldflags" \
  -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
"$work/kube-apiserver" --version >&2
mv -f "$work/kube-apiserver" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"
echo "build-kube-apiserver: built $OUT in $(( $(date +%s) - start ))s ($(du -h "$OUT" | cut -f1))" >&2
echo "$OUT"
