# cin7-gss — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# Cases per property test in `make reliability` (the fuzzing run).
FUZZ_CASES ?= 20000

.PHONY: help build test lint fmt run reliability audit

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build every crate
	$(CARGO) build --workspace --all-targets

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Format check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint check-infra audit ## Everything CI checks: lint, the template checks, then every test (AWS adapters against a local moto server)
	$(CARGO) build --workspace --bins
	scripts/with-moto $(CARGO) test --workspace --no-fail-fast

reliability: ## The reliability scenarios at full size on both backends, with their table; the parsers' property tests as a fuzzing run
	$(CARGO) build --workspace --bins
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test -p integration-tests --test parsers_prop --test webhook_prop
	scripts/with-moto $(CARGO) test -p integration-tests --test reliability -- --ignored --nocapture

audit: ## cargo-deny: licences, bans (no OpenSSL), sources, and advisories when the RustSec database can be fetched (scripts/audit)
	scripts/audit

run: ## The demo: sandboxes on loopback, 25 orders through local mode, every journey shown
	$(CARGO) run -q -p cin7-gss -- demo

.PHONY: bench
bench: ## Benchmarks (BENCH_FULL=1: full sizes, real-time limits): prints a table, writes bench/results.json
	$(CARGO) build --release -p order-pull -p consignment-webhook -p write-back
	$(CARGO) bench -p cin7-gss-bench --bench core
	scripts/with-moto $(CARGO) bench -q -p cin7-gss-bench --bench runner
	ulimit -n 65536 2>/dev/null || ulimit -n "$$(ulimit -Hn)"; $(CARGO) bench -q -p cin7-gss-bench --bench fleet

# ---- infrastructure: the SAM template, packaging, deployment (see README "Deployment")

FUNCTION ?=

.PHONY: check-infra package deploy deploy-code

check-infra: ## cfn-lint (with the serverless rules) on infra/template.yaml; writes target/template.json for tests/infra.rs
	@venv="$$(scripts/dev-venv)" && \
	echo "cfn-lint infra/template.yaml -a cfn_lint_serverless.rules" && \
	"$$venv/bin/cfn-lint" infra/template.yaml -a cfn_lint_serverless.rules && \
	"$$venv/bin/python" scripts/template_json.py infra/template.yaml target/template.json && \
	echo "check-infra: the template passes cfn-lint and the serverless rules; target/template.json written"

package: ## Build the three Lambda zips with cargo-lambda (arm64; x86_64 when arm64 cannot be had) and print their sizes
	scripts/package

deploy: check-infra ## sam build + sam deploy of infra/template.yaml (installs aws-sam-cli and cargo-lambda into .venv when missing)
	scripts/deploy

deploy-code: ## Fast code update of one function with cargo lambda deploy: make deploy-code FUNCTION=order-pull|consignment-webhook|write-back
	@test -n "$(FUNCTION)" || { echo "usage: make deploy-code FUNCTION=order-pull|consignment-webhook|write-back" >&2; exit 2; }
	scripts/deploy-code "$(FUNCTION)"
