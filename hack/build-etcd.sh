#!/usr/bin/env bash
# Builds etcd ETCD_VERSION (default v3.6.8, the etcd that kubeadm 1.36 pins
# as DefaultEtcdVersion) with only the Go module proxy, into
#   ${SLUICE_KUBE_CACHE:-~/.cache/sluice/kube}/etcd/$ETCD_VERSION/etcd
# and prints that path. Skips the build when the binary is already there.
# internal/kubetest runs it when the binary is missing; .ci/run runs it
# before `make test`.
#
# Why not Debian's etcd-server: bookworm ships 3.4.23. kube-apiserver 1.36
# starts on it but finds no RequestWatchProgress (k8s.io/apiserver
# pkg/storage/feature: etcd >= 3.4.31 or >= 3.5.13), so it refuses
# streaming lists (sendInitialEvents, which client-go >= 1.35 informers try
# first) and serves no consistent reads from its watch cache; kubeadm 1.36
# accepts no external etcd older than 3.5.24 (MinExternalEtcdVersion).
#
# etcd's own main package (go.etcd.io/etcd/v3) replaces its sibling modules
# with ./server, ./api...; the published go.etcd.io/etcd/server/v3 has the
# whole server in etcdmain, so a two-line main calling etcdmain.Main, as
# etcd's main.go is, builds the same binary.
set -euo pipefail

ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
CACHE="${SLUICE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kube}"
OUT_DIR="$CACHE/etcd/$ETCD_VERSION"
OUT="$OUT_DIR/etcd"
GO="${GO:-go}"

if [ -x "$OUT" ]; then
  echo "$OUT"
  exit 0
fi
case "$ETCD_VERSION" in
  v3.*.*) ;;
  *) echo "build-etcd: ETCD_VERSION $ETCD_VERSION is not v3.MINOR.PATCH" >&2; exit 1;;
esac

mkdir -p "$OUT_DIR"
work="$(mktemp -d "$OUT_DIR/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "build-etcd: building etcd $ETCD_VERSION into $OUT" >&2

smod="$(cd "$work" && GOFLAGS="-mod=mod -buildvcs=false" "$GO" mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" |
  sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
if [ ! -f "$smod" ]; then
  echo "build-etcd: go mod download go.etcd.io/etcd/server/v3@$ETCD_VERSION gave no go.mod" >&2
  exit 1
fi
{
  echo "module sluice.local/etcd-build"
  echo
  grep -m1 '^go ' "$smod"
  echo
  echo "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
} > "$work/go.mod"
cat > "$work/main.go" <<'GO'
// etcd, as go.etcd.io/etcd/v3's main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cd "$work"
GOFLAGS="-mod=mod -buildvcs=false" "$GO" mod tidy
CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" "$GO" build -trimpath -ldflags "-s -w" -o "$work/etcd" .
"$work/etcd" --version >&2
mv -f "$work/etcd" "$OUT.tmp.$$"
mv -f "$OUT.tmp.$$" "$OUT"
echo "build-etcd: built $OUT in $(( $(date +%s) - start ))s ($(du -h "$OUT" | cut -f1))" >&2
echo "$OUT"
