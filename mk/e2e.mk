# End-to-end tests and the newcomer's `make run`, against the local cluster
# (or any cluster: BERTH_USE_EXISTING_CLUSTER=1 with KUBECONFIG set).
RUN_DIR := $(HOME)/.cache/berth/run

.PHONY: test-e2e run stop

test-e2e: cluster-up operator-build ## end-to-end tests of the operator against the cluster (each test: own namespace, own operator)
	cargo build -p berth-e2e --tests
	KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} KUBECTL=$(CLUSTER_BIN)/kubectl \
		cargo test -p berth-e2e --test e2e -- --test-threads=$${E2E_THREADS:-3}

run: cluster-up operator-build ## the whole thing on this machine: cluster, CRD, operator, the item and order examples
	scripts/run.sh

stop: ## stop what `make run` started (the operator; `make cluster-down` stops the cluster)
	scripts/run.sh --stop
