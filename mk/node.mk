# End-to-end tests on the local cluster's real node, berth-node-0 (kubelet,
# containerd, runc, kube-proxy, CoreDNS; tests/e2e/tests/node/): the item and
# order images run as restricted pods and pass their probes, order reaches
# item through the URL Berth injects (cluster DNS, Service IPs), item's data
# on PostgreSQL survives its pod, and the operator runs in-cluster from its
# chart. The tests read the images' tag from BERTH_IMAGE_TAG and the URL pods
# use for the host's PostgreSQL from BERTH_NODE_DATABASE_URL; without the
# node, an image or the database they fail and name the command to run.
.PHONY: test-node

# After test-e2e and test-chart under `make test`, so the suites do not share the 2 cores.
test-node: cluster-up run-clear images operator-build $(if $(filter test,$(MAKECMDGOALS)),test-e2e test-chart) ## e2e tests on the real node: item and order as restricted pods, order->item over cluster DNS, PostgreSQL across a pod restart, the operator in-cluster from its chart
	cargo build -p berth-e2e --tests
	url=$$(scripts/postgres.sh --pods-url) && \
	KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} KUBECTL=$(CLUSTER_BIN)/kubectl \
	HELM=$(CLUSTER_BIN)/helm BERTH_IMAGE_TAG=$(firstword $(IMAGE_TAGS)) BERTH_NODE_DATABASE_URL=$$url \
		cargo test -p berth-e2e --test node -- --test-threads=$${NODE_THREADS:-2}
