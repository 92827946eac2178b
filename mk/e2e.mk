# End-to-end tests and the newcomer's `make run`, against the local cluster
# (or any cluster: BERTH_USE_EXISTING_CLUSTER=1 with KUBECONFIG set).
RUN_DIR := $(HOME)/.cache/berth/run

.PHONY: test-e2e run stop run-clear

# `make run`'s Berth watches every namespace: left running, it would reconcile
# the tests' MicroServices beside each test's own operator (seen: a scoped
# chart test found status written outside its namespace). Every suite on the
# shared cluster takes it down first; `make run` brings it back.
run-clear: cluster-up
	@if [ "$${BERTH_USE_EXISTING_CLUSTER:-}" != 1 ]; then \
		scripts/run.sh --stop | sed 's/^/[make run, stopped for the tests] /'; fi

test-e2e: cluster-up run-clear operator-build ## end-to-end tests of the operator against the cluster (each test: own namespace, own operator)
	cargo build -p berth-e2e --tests
	KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} KUBECTL=$(CLUSTER_BIN)/kubectl \
		cargo test -p berth-e2e --test e2e -- --test-threads=$${E2E_THREADS:-3}

# run.sh starts the cluster itself (it needs up.sh's word on the real node),
# then `make images` or, without the node, builds the host-process operator.
run: ## the whole thing on this machine: cluster with its real node, images, PostgreSQL, operator and services by their charts, one order through the Services (kwok-only fallback without the node)
	scripts/run.sh

stop: ## uninstall what `make run` installed (releases shop and berth; a host-process operator); `make cluster-down` stops the cluster
	scripts/run.sh --stop
