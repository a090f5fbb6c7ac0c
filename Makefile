# Vacancy — see README.md. Every target installs what it is missing first.
SHELL := /bin/bash
export SWIFT_DETERMINISTIC_HASHING := 1

PG_PORT ?= 54329
TEST_PG_PORT ?= 54339
APT_PACKAGES := postgresql libpq-dev libnghttp2-dev libssl-dev nghttp2-client curl jq openssl \
	chromium python3-jsonschema python3-yaml python3-venv python3-pip
# Only `make bench` needs these: Nchan, the peer SSE server the fan-out is compared with.
BENCH_PACKAGES := nginx libnginx-mod-nchan
SWIFT_SOURCES := Package.swift Shared Services Tests Benchmarks

.PHONY: run test resilience db stop build release lint format bench deps clean demo-traffic

run: deps ## the whole stack on a local cluster in .data/, demo data, http://localhost:8080
	@scripts/run.sh

demo-traffic: ## books, holds and cancels at random against `make run`, so the page moves
	@scripts/demo-traffic.sh

test: deps ## every test, on a throwaway PostgreSQL cluster, then the resilience suite
	@scripts/test.sh

resilience: deps ## the whole stack under faults, load and abuse; writes RESILIENCE.md
	@scripts/resilience.sh

db: deps ## start the local PostgreSQL cluster in .data/ and print its URL
	@scripts/pg.sh start $(or $(VACANCY_DATA_DIR),.data)/pg $(PG_PORT)

stop: ## stop what `make run` started from this checkout (by its recorded pids) and the local cluster
	@scripts/stop.sh $(or $(VACANCY_DATA_DIR),.data)/run/pids
	@scripts/pg.sh stop $(or $(VACANCY_DATA_DIR),.data)/pg $(PG_PORT)

build:
	swift build

release: ## what `make run` and `make bench` start (no run-time exclusivity checks: see scripts/release-bin.sh)
	swift build -c release -Xswiftc -enforce-exclusivity=unchecked

lint: ## check formatting with swift format
	swift format lint --strict --recursive $(SWIFT_SOURCES)

format:
	swift format --in-place --recursive $(SWIFT_SOURCES)

bench: deps ## load benchmarks; figures go to the terminal and bench-results/
	@scripts/apt-install.sh $(BENCH_PACKAGES)
	@scripts/bench.sh

deps: ## install missing system packages (apt-get update once, then install)
	@scripts/apt-install.sh $(APT_PACKAGES)
	@command -v swift >/dev/null || { echo "swift is not on PATH (Swift 6.2+ needed)"; exit 1; }

clean:
	rm -rf .build .test-output .venv
