# Scanorama — distributed network scanning.
#
# Two commands do everything on a fresh machine:
#   make demo   run the whole system end to end on loopback
#   make test   everything CI runs (generated-code check, lint, tests)

SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

# Tool versions are pinned here and installed into ./bin with go install.
BUF_VERSION                := v1.75.0
SQLC_VERSION               := v1.31.1
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION            := v1.9.3
GOLANGCI_LINT_VERSION      := v2.15.0

TOOLS := $(BIN)/.buf-$(BUF_VERSION) $(BIN)/.sqlc-$(SQLC_VERSION) \
	$(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION) $(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION) \
	$(BIN)/.grpcurl-$(GRPCURL_VERSION)

GO_TEST_FLAGS ?= -race -count=1 -timeout 20m
CASE ?=

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install missing system packages (nmap, PostgreSQL) or print the command to run
	@deploy/scripts/ensure-deps.sh

.PHONY: tools
tools: $(TOOLS) ## Install the pinned code generators and grpcurl into ./bin

$(BIN)/.buf-$(BUF_VERSION):
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) && touch $@
$(BIN)/.sqlc-$(SQLC_VERSION):
	GOBIN=$(BIN) go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION) && touch $@
$(BIN)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION) && touch $@
$(BIN)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION) && touch $@
$(BIN)/.grpcurl-$(GRPCURL_VERSION):
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION) && touch $@
# golangci-lint is only needed by `make lint`, so it is not in TOOLS (building it
# from source takes minutes; `make gen` should not wait for it).
GOLANGCI_LINT := $(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION)
$(GOLANGCI_LINT):
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) && touch $@

.PHONY: gen generate
gen generate: tools ## Regenerate gen/db (sqlc) and gen/pb (buf)
	rm -rf gen/db gen/pb
	$(BIN)/sqlc generate
	$(BIN)/buf generate

.PHONY: check-gen
check-gen: tools ## Fail if regenerating would change the committed generated code
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r proto sql sqlc.yaml buf.yaml buf.gen.yaml "$$tmp/"; ln -s $(BIN) "$$tmp/bin"; \
	(cd "$$tmp" && $(BIN)/sqlc generate && $(BIN)/buf generate); \
	if ! diff -r gen/db "$$tmp/gen/db" || ! diff -r gen/pb "$$tmp/gen/pb"; then \
		echo "check-gen: generated code is stale; run 'make gen' and commit the result" >&2; exit 1; \
	fi; echo "check-gen: generated code is up to date"

.PHONY: build
build: ## Build the controller and agent into ./bin
	go build -o $(BIN)/scanorama-controller ./controller/cmd/scanorama-controller
	go build -o $(BIN)/scanorama-agent ./agent/cmd/scanorama-agent

.PHONY: lint-fast
lint-fast: tools ## go vet, gofmt, buf lint, buf format and buf breaking (against main): the lint that needs no extra tool
	go vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(BIN)/buf lint
	$(BIN)/buf format -d --exit-code
	$(BIN)/buf breaking --against '.git#branch=main'

.PHONY: lint
lint: lint-fast $(GOLANGCI_LINT) ## lint-fast plus golangci-lint (.golangci.yml)
	$(BIN)/golangci-lint run ./...

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install the pinned golangci-lint into ./bin (a source build: minutes the first time)

.PHONY: test
test: deps check-gen lint-fast ## Everything CI runs: generated-code check, lint (golangci-lint too), all tests with -race
	GO_TEST_FLAGS="$(GO_TEST_FLAGS)" deploy/scripts/test.sh

.PHONY: test-short
test-short: ## Unit tests only: runs without PostgreSQL or nmap installed
	go test -short -count=1 ./...

.PHONY: demo
demo: deps tools build ## Run controller + agent + a real nmap scan of a loopback listener (KEEP=1 keeps it running)
	@deploy/scripts/demo.sh

.PHONY: bench
bench: deps tools build ## Run the benchmarks (CASE=name for one); writes bench/results.json
	go run ./controller/bench/cmd/scanorama-bench $(if $(CASE),--case $(CASE))

.PHONY: bench-data
bench-data: deps tools build ## Run the benchmarks at scale only (a year of data; SCALE_MONTH_ROWS=n rows a month, SCALE_HOSTS=n, SCALE_SITES=n)
	go run ./controller/bench/cmd/scanorama-bench --case scale $(if $(SCALE_MONTH_ROWS),--scale-month-rows $(SCALE_MONTH_ROWS)) $(if $(SCALE_HOSTS),--scale-hosts $(SCALE_HOSTS)) $(if $(SCALE_SITES),--scale-sites $(SCALE_SITES))

.PHONY: clean
clean: ## Remove build output and local state
	rm -rf $(BIN) .scanorama .scanorama-agent .demo bench/results.json
