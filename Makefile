# osprey — run `make` for the list of targets.
.PHONY: help build dist image minio-image test unit integ jepsen lint bench cluster-up cluster-down clean

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

help:
	@echo "targets:"
	@echo "  build         static binary ./bin/osprey (CGO_ENABLED=0)"
	@echo "  image         container image osprey:latest and osprey:<version> (podman or docker)"
	@echo "  minio-image   MinIO image osprey-minio:latest FROM scratch, for compose.yaml"
	@echo "  dist          release binaries in ./dist for linux/amd64, linux/arm64, darwin/arm64 + SHA256SUMS"
	@echo "  test          everything CI runs: installs tools, go test -race ./..., short chaos run"
	@echo "  unit          go test -race ./... only"
	@echo "  jepsen        chaos run (JEPSEN_ARGS='--time 10m --nodes 5')"
	@echo "  lint          gofmt -l and go vet"
	@echo "  bench         benchmarks against local 1- and 3-node clusters"
	@echo "  cluster-up    local 3-node cluster (scripts/cluster.sh up)"
	@echo "  cluster-down  stop it"
	@echo "  clean         remove build output"

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/osprey ./cmd/osprey

CONTAINER ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)

image: build
	mkdir -p build && cp /etc/ssl/certs/ca-certificates.crt build/ca-certificates.crt
	$(CONTAINER) build $(if $(findstring podman,$(CONTAINER)),--format docker) -t osprey:latest -t osprey:$(VERSION) .

minio-image:
	CONTAINER=$(CONTAINER) deploy/compose/minio-image.sh

DIST_TARGETS := linux/amd64 linux/arm64 darwin/arm64

dist:
	rm -rf dist && mkdir -p dist
	@for t in $(DIST_TARGETS); do \
		os=$${t%/*}; arch=$${t#*/}; \
		echo "building osprey-$(VERSION)-$$os-$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags '$(LDFLAGS)' \
			-o dist/osprey-$(VERSION)-$$os-$$arch ./cmd/osprey || exit 1; \
	done
	cd dist && sha256sum osprey-* > SHA256SUMS && cat SHA256SUMS

test:
	scripts/test.sh

unit:
	go test -race -timeout 20m ./...

jepsen:
	scripts/jepsen.sh $(JEPSEN_ARGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

bench:
	scripts/bench.sh

cluster-up:
	scripts/cluster.sh up

cluster-down:
	scripts/cluster.sh down

clean:
	rm -rf bin dist build
