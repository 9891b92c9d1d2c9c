# The two set-up commands of README.md:
#   make demo   builds sluice and runs the local canary demo
#   make test   checks (go mod tidy, gofmt, vet, staticcheck), fuzzes briefly
#               and runs every test, with the race detector
GO ?= go
GOFMT ?= gofmt
# Packages whose tests start sluice processes built with -race too (the
# conformance groups run a plain build: with -race they exceed the time
# budget on 2 cores).
RACE_PROCS = ./test/e2e
# The conformance runner's test binary runs directly (in its package folder,
# as go test runs it) so that each group's line, such as "conformance
# istio-tasks: 46 passed, 0 failed, 2 skipped", shows in the log even when
# everything passes (go test prints a passing package's output only with -v).
CONFORMANCE_TEST = bin/conformance.test
# How long `make fuzz` runs each fuzz test (bench/fuzz.sh runs longer).
FUZZTIME ?= 3s

.PHONY: build demo test checks tidy-check fmt-check vet staticcheck lint fuzz bench bench-xds golden kube-binaries proto

build:
	$(GO) build -o bin/sluice ./cmd/sluice

demo: build
	./bin/sluice demo

test: checks fuzz
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v -e /test/e2e -e /test/conformance)
	SLUICE_TEST_RACE=1 $(GO) test -race -count=1 -timeout 20m $(RACE_PROCS)
	$(GO) test -race -c -o $(CONFORMANCE_TEST) ./test/conformance
	cd test/conformance && $(CURDIR)/$(CONFORMANCE_TEST) -test.timeout=20m

# The checks that fail `make test` before any test runs.
checks: tidy-check fmt-check vet staticcheck

# go.mod and go.sum must be what `go mod tidy` makes of them.
tidy-check:
	@$(GO) mod tidy -diff || { echo "tidy-check: go.mod/go.sum differ from what go mod tidy makes (diff above); run go mod tidy"; exit 1; }

# Every Go file must be gofmt'd.
fmt-check:
	@out=$$($(GOFMT) -l .) || exit 1; \
	if [ -n "$$out" ]; then echo "fmt-check: not gofmt'd (run gofmt -w on them):"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck (staticcheck.conf says which checks). .ci/run installs it;
# with CI=true a missing staticcheck fails, elsewhere it is skipped with a note.
STATICCHECK ?= $(shell command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck)
staticcheck:
	@if [ -x "$(STATICCHECK)" ]; then echo "$(STATICCHECK) ./..."; $(STATICCHECK) ./...; \
	else case "$$CI" in \
	true|TRUE|True|1) echo "staticcheck: not installed and CI=$$CI: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; exit 1;; \
	*) echo "staticcheck: not installed, skipped (CI=true fails here): go install honnef.co/go/tools/cmd/staticcheck@v0.8.2";; \
	esac; fi
lint: staticcheck

# Every Fuzz* test of the module, each for $(FUZZTIME) (see bench/fuzz.sh).
fuzz:
	GO=$(GO) ./bench/fuzz.sh $(FUZZTIME)

# The etcd and kube-apiserver that internal/kubetest runs, built from their
# modules with the Go module proxy into ~/.cache/sluice/kube (once per
# version; .ci/run runs this; the tests build a missing one themselves
# unless CI=true).
kube-binaries:
	GO=$(GO) nice -n 10 ./hack/build-etcd.sh
	GO=$(GO) nice -n 10 ./hack/build-kube-apiserver.sh

# The Go types of Istio's workload API (api/workloadapi) with protoc and
# protoc-gen-go; the output is committed.
proto:
	./hack/gen-workloadapi.sh

golden:
	$(GO) test ./pkg/xdsgen -update

BENCH_FLAGS ?=
bench: build
	./bench/perf.sh $(BENCH_FLAGS)

# The control-plane scale benchmark (bench/README.md); flags in
# BENCH_XDS_FLAGS, e.g. make bench-xds BENCH_XDS_FLAGS="-points 1000x10x1000 -sidecar-scope".
BENCH_XDS_FLAGS ?=
bench-xds: build
	$(GO) run ./bench/xds -sluice bin/sluice $(BENCH_XDS_FLAGS)
