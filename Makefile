# The two set-up commands of README.md:
#   make demo   builds sluice and runs the local canary demo
#   make test   runs every test, with the race detector
GO ?= go
# Packages whose tests start sluice processes built with -race too (the
# conformance groups run a plain build: with -race they exceed the time
# budget on 2 cores).
RACE_PROCS = ./test/e2e

.PHONY: build demo test bench golden lint

build:
	$(GO) build -o bin/sluice ./cmd/sluice

demo: build
	./bin/sluice demo

test: lint
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v -e /test/e2e -e /test/conformance)
	SLUICE_TEST_RACE=1 $(GO) test -race -count=1 -timeout 20m $(RACE_PROCS)
	$(GO) test -race -count=1 -timeout 20m ./test/conformance

golden:
	$(GO) test ./pkg/xdsgen -update

bench: build
	./bench/sidecar.sh

# staticcheck (installed by .ci/run; skipped with a note when absent).
STATICCHECK ?= $(shell command -v staticcheck || echo $$($(GO) env GOPATH)/bin/staticcheck)
lint:
	@if [ -x "$(STATICCHECK)" ]; then $(STATICCHECK) ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; fi
