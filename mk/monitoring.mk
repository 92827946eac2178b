# Monitoring: a real Prometheus for the local cluster, a process on this
# machine (tests/cluster/prometheus/prometheus.sh, state under
# ~/.cache/berth/cluster/prometheus). It scrapes the annotated pods on the
# real node, the operators running as processes here that register
# themselves, and itself, and evaluates charts/berth-operator/rules/; `up`
# also installs the Prometheus Operator's ServiceMonitor, PodMonitor and
# PrometheusRule CRDs. Query it: curl 'http://127.0.0.1:9090/api/v1/query?query=up'

.PHONY: prometheus-up prometheus-down prometheus-status

prometheus-up: cluster-up ## start Prometheus on 127.0.0.1:9090 for the local cluster (built once, ~2 min cold) and install the ServiceMonitor/PodMonitor/PrometheusRule CRDs (idempotent: reloads a running one)
	tests/cluster/prometheus/prometheus.sh up

prometheus-down: ## stop the local Prometheus (its data and the CRDs are kept)
	tests/cluster/prometheus/prometheus.sh down

prometheus-status: ## whether the local Prometheus runs, its pid and address
	tests/cluster/prometheus/prometheus.sh status

# The e2e and node tests query it, and `make run` leaves it running beside
# the cluster (started before scripts/run.sh: pods are discovered as they
# come). It stops before the cluster does, so `make cluster-down` leaves no
# process behind and `make cluster-wipe` no Prometheus writing into a
# deleted directory.
test-e2e: prometheus-up
test-node: prometheus-up
run: prometheus-up
cluster-down: prometheus-down
cluster-wipe: prometheus-down
