# Fault tests (tests/e2e/tests/faults.rs): they stop and start the API server
# and etcd, so they run alone, one at a time, after every other e2e test, on
# a kwok-only cluster of their own (~/.cache/berth/cluster-faults, other
# ports): an outage there touches neither the shared cluster nor its real node.
FAULTS_CLUSTER_DIR ?= $(HOME)/.cache/berth/cluster-faults
FAULTS_ENV = BERTH_CLUSTER_DIR=$(FAULTS_CLUSTER_DIR) BERTH_NODE=0 \
	BERTH_APISERVER_PORT=8443 BERTH_ETCD_PORT=4379 BERTH_ETCD_PEER_PORT=4380 \
	BERTH_CONTROLLER_MANAGER_PORT=12257 BERTH_SCHEDULER_PORT=12259 \
	BERTH_KWOK_PORT=12247 BERTH_METRICS_SERVER_PORT=5444
.PHONY: test-faults faults-cluster-down

# Under `make test` (even with -j) they wait for the other e2e tests.
# --nocapture: the tests print what they measured (recovery and handover
# times, the seeds of the SIGKILL series: BERTH_FAULT_SEED=<seed> replays one).
test-faults: operator-build $(if $(filter test,$(MAKECMDGOALS)),test-e2e test-chart test-node) ## fault e2e tests: leader election, API server/etcd outages, SIGKILL bursts, conflicts (own kwok-only cluster, stopped afterwards)
	cargo build -p berth-e2e --tests
	$(FAULTS_ENV) tests/cluster/up.sh >/dev/null
	trap '$(FAULTS_ENV) tests/cluster/down.sh >/dev/null' EXIT; \
	$(FAULTS_ENV) KUBECONFIG=$(FAULTS_CLUSTER_DIR)/kubeconfig KUBECTL=$(CLUSTER_BIN)/kubectl \
		cargo test -p berth-e2e --test faults -- --test-threads=1 --nocapture

faults-cluster-down: ## stop the fault tests' cluster (if a run was interrupted)
	$(FAULTS_ENV) tests/cluster/down.sh
