# Parley — developer and CI entry points. `make` (or `make help`) lists the targets.
#
# PostgreSQL: `make run` starts a persistent local cluster in $(PG_RUN_DIR) (it keeps
# running after the node stops; `make db-stop` stops it). `make test`, `test-short` and
# `bench` use a throwaway cluster in $(PG_TEST_DIR) that is destroyed afterwards.
# Set DATABASE_URL to make `run` use an existing database instead.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
GOFMT ?= gofmt
PG_RUN_DIR ?= $(CURDIR)/.pgdata/run
PG_RUN_PORT ?= 55432
PG_TEST_DIR ?= $(CURDIR)/.pgdata/test
PG_TEST_PORT ?= 55433
# Settings of the throwaway cluster: tests trade durability for speed; `make bench`
# measures a durable server (Postgres's defaults).
PG_TEST_OPTS ?= fsync=off full_page_writes=off
# Packages whose tests run a Proto.Actor cluster inside the test process: their
# tests are tagged !race and run in a second pass without -race.
NORACE_PKGS ?= ./actors
# ...and tests tagged !race in packages whose other tests run with -race.
NORACE_TESTS ?= -run '^Test(ShutdownIsIdempotent|FailedStartCleansUp|LostLeaseStopsTheNode)$$' ./internal/node
# Evaluated by the shell in the recipe, not by make.
PROTOACTOR_DIR = $$($(GO) list -m -f '{{.Dir}}' github.com/asynkron/protoactor-go)
GOBIN_DIR = $$($(GO) env GOPATH | cut -d: -f1)/bin

# Shell prefix for recipes that need the throwaway test database: start a fresh cluster,
# export PARLEY_TEST_DATABASE_URL, and destroy the cluster when the shell exits, whether
# the command after the prefix succeeds or fails (its exit status is kept).
WITH_TEST_PG = \
	trap 'scripts/pg.sh destroy "$(PG_TEST_DIR)" || true' EXIT; trap 'exit 130' INT TERM; \
	scripts/pg.sh destroy "$(PG_TEST_DIR)"; \
	PARLEY_TEST_DATABASE_URL=$$(PG_OPTS="$(PG_TEST_OPTS)" scripts/pg.sh start "$(PG_TEST_DIR)" "$(PG_TEST_PORT)"); \
	export PARLEY_TEST_DATABASE_URL;

.PHONY: help run cluster cluster-stop db-stop test test-short fuzz-short bench proto proto-check build vet

help: ## list the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-12s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## run one node (cluster.yaml) against a local Postgres in .pgdata/run, or DATABASE_URL if set
	@scripts/deps.sh
	@if [[ -z "$${DATABASE_URL:-}" ]]; then \
		DATABASE_URL=$$(scripts/pg.sh start "$(PG_RUN_DIR)" "$(PG_RUN_PORT)"); \
	fi; \
	export DATABASE_URL; \
	echo "Parley: http://127.0.0.1:8080 (REST + WebSocket /v1/ws), admin http://127.0.0.1:8081; database $$DATABASE_URL"; \
	exec $(GO) run ./cmd/node -config cluster.yaml

cluster: ## start 3 nodes on loopback (automanaged provider) sharing the `make run` Postgres; prints their addresses
	@scripts/deps.sh
	@scripts/cluster.sh start 3

cluster-stop: ## stop the nodes of `make cluster` (SIGTERM: they drain and leave)
	@scripts/cluster.sh stop

db-stop: ## stop the local Postgres started by `make run`
	@scripts/pg.sh stop "$(PG_RUN_DIR)"

test: ## all tests with -race against a throwaway Postgres (installs PostgreSQL, ZooKeeper and Chromium if missing)
	@scripts/deps.sh zookeeper chromium
	@$(WITH_TEST_PG) $(GO) test -race -count=1 -timeout 15m ./... && \
		echo "# in-process cluster tests, without -race (Proto.Actor's own races: research/protoactor.md §7)" && \
		$(GO) test -count=1 -timeout 10m $(NORACE_PKGS) && \
		$(GO) test -count=1 -timeout 5m $(NORACE_TESTS)

test-short: ## all tests without -race (quicker) against a throwaway Postgres
	@scripts/deps.sh
	@$(WITH_TEST_PG) $(GO) test -count=1 -timeout 15m ./...

# Budget of each fuzz target in `make fuzz-short`: a count of executions, not a duration.
# A duration races Go's fuzz coordinator at the deadline and fails with a bare "context deadline
# exceeded" and no failing input (go.dev/issue/75804, fixed in Go 1.27; CI failed on it with
# go1.26.8). A count has no deadline to race; 10000 runs take 2-4 s a target here.
FUZZTIME ?= 10000x

fuzz-short: ## run every fuzz target (func Fuzz... in a _test.go file) for FUZZTIME (10000x) each
	@targets=$$(grep -rE --include='*_test.go' --exclude-dir=.git --exclude-dir=.pgdata --exclude-dir=testdata \
		-o '^func Fuzz[A-Za-z0-9_]*\(' . | sed -E 's/:func /:/; s/\($$//' | sort || true); \
	if [[ -z "$$targets" ]]; then echo "fuzz-short: no fuzz targets found" >&2; exit 1; fi; \
	failed=; \
	for t in $$targets; do \
		dir=$$(dirname "$${t%%:*}"); name=$${t##*:}; \
		echo "# $$name in $$dir"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) "$$dir" || failed="$$failed $$name"; \
	done; \
	if [[ -n "$$failed" ]]; then echo "fuzz-short: failed:$$failed (inputs saved under the package's testdata/fuzz/)" >&2; exit 1; fi

bench: PG_TEST_OPTS =
bench: ## Go benchmarks and a short load scenario against a throwaway durable Postgres; saved in bench/results/DATE.md
	@scripts/deps.sh
	@mkdir -p bench/results
	@$(WITH_TEST_PG) \
	out=bench/results/$$(date +%F).md; \
	printf '# Benchmarks %s: %s, %s CPUs, %s\n\n```text\n' "$$(date +%F)" "$$(uname -m)" "$$(nproc)" "$$($(GO) version)" | tee "$$out"; \
	status=0; \
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./... 2>&1 | tee -a "$$out" || status=$$?; \
	printf '```\n' | tee -a "$$out"; \
	DATABASE_URL=$$PARLEY_TEST_DATABASE_URL BENCH_OUT=$$out scripts/bench-scale.sh quick || status=$$?; \
	echo "bench: wrote $$out" >&2; \
	exit $$status

proto: ## regenerate proto/parleypb/*.pb.go from proto/*.proto
	@scripts/deps.sh proto
	@dir=$(PROTOACTOR_DIR); \
	if [[ -z "$$dir" ]]; then $(GO) mod download github.com/asynkron/protoactor-go; dir=$(PROTOACTOR_DIR); fi; \
	export PATH="$(GOBIN_DIR):$$PATH"; \
	set -x; \
	protoc -I proto -I "$$dir/actor" --go_out=. --go_opt=module=github.com/parleychat/parley \
		--go_opt=Mactor.proto=github.com/asynkron/protoactor-go/actor proto/*.proto

proto-check: ## fail if the generated code in proto/ is stale
	@$(MAKE) --no-print-directory proto
	@git diff --exit-code -- proto/ || { echo "proto-check: generated code is stale; run make proto and commit" >&2; exit 1; }
	@untracked=$$(git ls-files --others --exclude-standard -- proto/); \
	if [[ -n "$$untracked" ]]; then echo "proto-check: untracked files in proto/:" >&2; echo "$$untracked" >&2; exit 1; fi

build: ## build the node and the parley CLI into bin/
	$(GO) build -o bin/node ./cmd/node && $(GO) build -o bin/parley ./cmd/parley

vet: ## gofmt check (generated *.pb.go excepted) and go vet
	@unformatted=$$($(GOFMT) -l . | grep -v '\.pb\.go$$' || true); \
	if [[ -n "$$unformatted" ]]; then echo "vet: gofmt -w needed on:" >&2; echo "$$unformatted" >&2; exit 1; fi
	$(GO) vet ./...
