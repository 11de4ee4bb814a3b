# gridha — see README.md. Targets:
#   make build   build bin/gridha
#   make test    install the test bed's Debian packages when missing, then unit + integration tests (root)
#   make demo    bring up a local test bed and run gridha against it (root)
#   make bench   print the figures: runs, verify, failover, DNS removal
#   make lint    gofmt, go vet, staticcheck
#   make dist    static binaries (linux amd64, arm64), .deb and .rpm in dist/
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# The commit's date, not the clock's: two builds of one commit are the same.
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
GOTEST_TIMEOUT ?= 40m
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build test unit deps demo demo-bdii bench lint clean dist

# Static, as make dist builds it: gridha copies itself to the nodes (hagd,
# the fact agent), which need no particular libc, and start faster without
# the dynamic loader.
build:
	CGO_ENABLED=0 go build -ldflags "$(LDFLAGS)" -o bin/gridha ./cmd/gridha

deps:
	bash scripts/install-deps.sh

# Release binaries and packages: dist/gridha-linux-{amd64,arm64} (static,
# version/commit/date stamped), dist/gridha_*.deb and dist/gridha-*.rpm
# (nfpm, a Go tool dependency), dist/SHA256SUMS.
dist:
	VERSION=$(VERSION) COMMIT=$(COMMIT) DATE=$(DATE) bash scripts/dist.sh

# Unit and integration tests. Integration tests need root (network
# namespaces); under CI=true they fail instead of skipping. The packaging
# tests (packaging/) check what make dist built.
test: deps build dist
	go vet ./...
	go test -count=1 -p 2 -timeout $(GOTEST_TIMEOUT) ./...

# Unit tests only (no test bed): quick feedback for non-root developers.
unit:
	go test -count=1 -short ./...

demo: deps build
	bash scripts/demo.sh

demo-bdii: deps build
	bash scripts/demo-bdii.sh

bench: deps build
	bash scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed: $$out"; exit 1; fi
	go vet ./...
	@command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

clean:
	rm -rf bin dist
