# The two set-up commands of README.md:
#   make demo   builds sluice and runs the local canary demo
#   make test   runs every test, with the race detector
GO ?= go

.PHONY: build demo test bench golden

build:
	$(GO) build -o bin/sluice ./cmd/sluice

demo: build
	./bin/sluice demo

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

golden:
	$(GO) test ./pkg/xdsgen -update

bench: build
	./bench/sidecar.sh
