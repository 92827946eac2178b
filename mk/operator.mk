# The operator (operator/): build, CRD generation, unit and mocked tests, lint.
KUBECTL = $(CLUSTER_BIN)/kubectl --kubeconfig $${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig}

.PHONY: operator-build crd test-operator lint lint-operator operator-run

operator-build: ## build the berth-operator binary
	cargo build -p berth-operator

crd: ## regenerate crds/microservice.yaml from the code (a test fails when they differ)
	cargo run -q -p berth-operator -- crd > crds/microservice.yaml

test-operator: ## the operator's unit, snapshot, mocked-API and CRD-drift tests (no cluster needed)
	cargo test -p berth-operator

lint-operator: ## rustfmt check and clippy (warnings are errors) for the operator and the e2e tests
	cargo fmt --check -p berth-operator -p berth-e2e
	cargo clippy -p berth-operator -p berth-e2e --all-targets -- -D warnings

lint: lint-operator lint-services ## every formatter and linter check

operator-run: operator-build ## run the operator in the foreground against $$KUBECONFIG (local cluster by default)
	KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} target/debug/berth-operator run --metrics-addr 127.0.0.1:8080
