# cin7-gss — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help build test lint fmt run reliability

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build every crate
	$(CARGO) build --workspace --all-targets

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Format check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint ## Everything CI checks: lint, then every test (AWS adapters against a local moto server)
	$(CARGO) build --workspace --bins
	scripts/with-moto $(CARGO) test --workspace

reliability: ## The reliability scenarios at full size, with their table
	$(CARGO) build --workspace --bins
	scripts/with-moto $(CARGO) test -p integration-tests --test reliability -- --ignored --nocapture

run: ## The demo: sandboxes on loopback, 25 orders through local mode, every journey shown
	$(CARGO) run -q -p cin7-gss -- demo
