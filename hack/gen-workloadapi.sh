#!/usr/bin/env bash
# Generates pkg/workloadapi (Istio's workload API: Address, Workload,
# Service) and pkg/workloadapi/security (Authorization) from the protos in
# api/workloadapi, Istio's own (see api/workloadapi/README.md), with protoc
# and protoc-gen-go only (no vtproto or JSON helpers). The generated .pb.go
# files are committed: CI does not run protoc.
#
# Needs: protoc (apt-get install protobuf-compiler) and
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
# (the google.golang.org/protobuf version in go.mod).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
command -v protoc >/dev/null || { echo "protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
command -v protoc-gen-go >/dev/null || { echo "protoc-gen-go not found (go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12)" >&2; exit 1; }
# -I api: authorization.proto imports "workloadapi/workload.proto", as in
# Istio's tree. module= strips the module path from go_package.
protoc -I api \
	--go_out=. --go_opt=module=github.com/sluice-mesh/sluice \
	api/workloadapi/workload.proto api/workloadapi/security/authorization.proto
