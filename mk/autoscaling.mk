# Autoscaling: the custom metrics API on the local cluster (what MicroService
# autoscaling.targetRequestsPerSecond needs: the pods' own request rate) and
# the scaling benchmarks, on kwok (bench/autoscaling/run.sh, CPU stand-in)
# and under real load on the real node (bench/autoscaling/real-load.sh).
# See tests/cluster/custom-metrics/adapter.sh.

.PHONY: custom-metrics-up custom-metrics-down test-custom-metrics bench-autoscaling bench-autoscaling-real

custom-metrics-up: cluster-up ## build (once, ~5 min cold) and register the custom metrics adapter (custom.metrics.k8s.io) on the local cluster
	tests/cluster/custom-metrics/adapter.sh up

test-custom-metrics: ## the custom metrics adapter's unit tests: /metrics parsing, rates, counter resets, scraping (go vet, go test)
	cd tests/cluster/custom-metrics && go vet ./... && go test ./...

custom-metrics-down: ## unregister and stop the custom metrics adapter
	tests/cluster/custom-metrics/adapter.sh down

bench-autoscaling: cluster-up operator-build ## on kwok: time scale-up and scale-down under a CPU load step (a stand-in), next to the HPA's configured periods
	bench/autoscaling/run.sh $${ROUNDS:-3}

bench-autoscaling-real: cluster-up images operator-build custom-metrics-up ## the real-load scenarios on the real node, their figures and plots kept in bench/autoscaling/real-load/
	cargo build -p berth-e2e --tests
	$(NODE_TEST_ENV) bench/autoscaling/real-load.sh

# The e2e tests check what a MicroService says when no pod has a request
# rate, and the node tests scale on it; the adapter goes away before the
# cluster does (an APIService without its server makes namespace
# deletion hang), so `make cluster-down` leaves no process behind.
test-e2e: custom-metrics-up
test-node: custom-metrics-up
cluster-down: custom-metrics-down
cluster-wipe: custom-metrics-down
