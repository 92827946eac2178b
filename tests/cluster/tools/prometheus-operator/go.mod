// The Prometheus Operator's module, for its CustomResourceDefinitions only
// (example/prometheus-operator-crd/): tests/cluster/prometheus/prometheus.sh
// installs ServiceMonitor, PodMonitor and PrometheusRule from it. Nothing is
// built from it, so `go mod tidy` would drop the requirement: do not run it.
module berth.dev/tests/cluster/tools/prometheus-operator

go 1.26.7

require github.com/prometheus-operator/prometheus-operator v0.85.0
