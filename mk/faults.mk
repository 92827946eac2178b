# Fault tests (tests/e2e/tests/faults.rs): they stop and start the API server
# and etcd of the cluster BERTH_CLUSTER_DIR names, so they run alone, one at
# a time, after every other e2e test.
.PHONY: test-faults

# Under `make test` (even with -j) they wait for the other e2e tests.
test-faults: cluster-up operator-build $(if $(filter test,$(MAKECMDGOALS)),test-e2e test-chart) ## fault e2e tests: leader election, API server/etcd outages, SIGKILL bursts, conflicts (stop cluster components; run alone)
	cargo build -p berth-e2e --tests
	KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} KUBECTL=$(CLUSTER_BIN)/kubectl \
		cargo test -p berth-e2e --test faults -- --test-threads=1
