# The reference services (services/): item and order, their test suite on
# both stores, the benchmark and the container images.
SERVICES_PACKAGES := -p berth-service-kit -p item-service -p order-service

.PHONY: services-build run-item run-order services-postgres test-services test-contract lint-services bench-services services-images

services-build: ## build the item and order service binaries
	cargo build -p item-service -p order-service

run-item: ## run the item service on :8081, in memory (DATABASE_URL=postgres://... for PostgreSQL)
	PORT=$${PORT:-8081} LOG_FORMAT=$${LOG_FORMAT:-text} cargo run -p item-service

run-order: ## run the order service on :8082 against the item service at ITEM_URL (default :8081)
	PORT=$${PORT:-8082} ITEM_URL=$${ITEM_URL:-http://127.0.0.1:8081} LOG_FORMAT=$${LOG_FORMAT:-text} cargo run -p order-service

services-postgres: ## start the loopback PostgreSQL the service tests use (installs it if missing); prints its URL
	scripts/postgres.sh

test-services: ## every service test, on the in-memory store and on PostgreSQL (started here; never skipped in CI)
	url=$$(scripts/postgres.sh) && export BERTH_TEST_DATABASE_URL=$$url && \
	cargo build -p item-service -p order-service --bins && \
	cargo test $(SERVICES_PACKAGES)

test-contract: ## each service against its own /openapi.json: schemathesis (pinned, in a venv under ~/.cache/berth), every check, all four phases, in memory
	scripts/contract/run.sh

lint-services: ## rustfmt check and clippy (warnings are errors) for the services
	cargo fmt --check $(SERVICES_PACKAGES)
	cargo clippy $(SERVICES_PACKAGES) --all-targets -- -D warnings

bench-services: ## benchmark the services against their floors (bare handlers doing the same work) and a hello server (wrk, pinned cores); prints and writes bench/services/results.md
	bench/services/run.sh

services-images: ## build the services' container images with podman or docker (the Containerfile's item-service and order-service targets)
	engine=$$(command -v podman || command -v docker) && \
	for image in item-service order-service; do \
		$$engine build -f Containerfile --target $$image -t berth/$$image:dev . || exit 1; \
	done
