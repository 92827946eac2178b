//go:build tools

// Package tools pins Prometheus and promtool: the local cluster's metrics
// server (tests/cluster/prometheus/) and the rules' unit tester.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
