# End-to-end tests on the local cluster's real node, berth-node-0 (kubelet,
# containerd, runc, kube-proxy, CoreDNS; tests/e2e/tests/node/): the item and
# order images run as restricted pods and pass their probes, order reaches
# item through the URL Berth injects (cluster DNS, Service IPs), item's data
# on PostgreSQL survives its pod, the operator runs in-cluster from its
# chart, and real load through the Services (autoscaling, a rollout, pods
# lost, a dependency down, scarce stock; bench/autoscaling/real-load.sh
# keeps their figures). The tests read the images' tags from BERTH_IMAGE_TAG (the first is the
# one pods start with, the second the one a rollout changes to) and the URL pods
# use for the host's PostgreSQL from BERTH_NODE_DATABASE_URL; without the
# node, an image or the database they fail and name the command to run.
.PHONY: test-node

# What the node tests need to find the cluster, its tools and the images.
NODE_TEST_ENV = KUBECONFIG=$${KUBECONFIG:-$(BERTH_CLUSTER_DIR)/kubeconfig} KUBECTL=$(CLUSTER_BIN)/kubectl \
	HELM=$(CLUSTER_BIN)/helm BERTH_IMAGE_TAG="$(IMAGE_TAGS)"

# After test-e2e and test-chart under `make test`, so the suites do not share
# the 2 cores. The real-load scenarios among them take the node one at a time.
test-node: cluster-up run-clear images operator-build $(if $(filter test,$(MAKECMDGOALS)),test-e2e test-chart) ## e2e tests on the real node: restricted pods, order->item over cluster DNS, PostgreSQL across a pod restart, the operator in-cluster from its chart, and real load (autoscaling on CPU and request rate, a rollout, pods lost, a dependency down, scarce stock)
	cargo build -p berth-e2e --tests
	url=$$(scripts/postgres.sh --pods-url) && \
	$(NODE_TEST_ENV) BERTH_NODE_DATABASE_URL=$$url \
		cargo test -p berth-e2e --test node -- --test-threads=$${NODE_THREADS:-2}
