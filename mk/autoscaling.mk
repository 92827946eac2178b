# Autoscaling: the custom metrics API on the local cluster (what MicroService
# autoscaling.targetRequestsPerSecond needs) and the scaling benchmark.
# See tests/cluster/custom-metrics/adapter.sh and bench/autoscaling/run.sh.

.PHONY: custom-metrics-up custom-metrics-down bench-autoscaling

custom-metrics-up: cluster-up ## build (once, ~5 min cold) and register the custom metrics adapter (custom.metrics.k8s.io) on the local cluster
	tests/cluster/custom-metrics/adapter.sh up

custom-metrics-down: ## unregister and stop the custom metrics adapter
	tests/cluster/custom-metrics/adapter.sh down

bench-autoscaling: custom-metrics-up operator-build ## time scale-up and scale-down under a load step, next to the HPA's configured periods
	bench/autoscaling/run.sh $${ROUNDS:-3}

# The e2e tests scale on requests per second too; and the adapter goes away
# before the cluster does (an APIService without its server makes namespace
# deletion hang), so `make cluster-down` leaves no process behind.
test-e2e: custom-metrics-up
cluster-down: custom-metrics-down
cluster-wipe: custom-metrics-down
