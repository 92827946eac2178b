# The local Kubernetes test cluster (tests/cluster/): built from Go modules,
# state under ~/.cache/berth/cluster. See tests/cluster/README.md.
CLUSTER_DIR ?= $(HOME)/.cache/berth/cluster
CLUSTER_BIN := $(shell tests/cluster/build.sh --print)
# BERTH_CLUSTER_DIR wins over CLUSTER_DIR when set in the environment.
export BERTH_CLUSTER_DIR ?= $(CLUSTER_DIR)

.PHONY: cluster-build cluster-up cluster-down cluster-wipe cluster-status cluster-env cluster-logs kubectl

cluster-build: ## build the cluster binaries into ~/.cache/berth (once per version)
	tests/cluster/build.sh

# up.sh builds what is missing (only kubectl with BERTH_USE_EXISTING_CLUSTER=1).
cluster-up: ## start the local cluster, building it first if needed (idempotent; prints the KUBECONFIG line)
	tests/cluster/up.sh

cluster-down: ## stop every cluster process (state kept: next start is warm)
	tests/cluster/down.sh

cluster-wipe: ## stop the cluster and delete its state (certificates, etcd data, logs)
	tests/cluster/down.sh --wipe

cluster-status: ## one line per cluster component; fails if one is down
	tests/cluster/status.sh

cluster-env: ## print the export KUBECONFIG=... line for the local cluster (eval it)
	@echo "export KUBECONFIG=$(BERTH_CLUSTER_DIR)/kubeconfig"

cluster-logs: ## tail the logs of every cluster component
	tail -n 20 $(BERTH_CLUSTER_DIR)/logs/*.log

kubectl: ## run the cluster's kubectl against it: make kubectl ARGS="get pods -A"
	@$(CLUSTER_BIN)/kubectl --kubeconfig $(BERTH_CLUSTER_DIR)/kubeconfig $(ARGS)

.PHONY: cluster-smoke
cluster-smoke: ## check the running cluster: deploy, delete, GC, kubectl top, HPA (~90 s)
	tests/cluster/smoke.sh --hpa
