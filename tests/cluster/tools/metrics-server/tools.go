//go:build tools

// Package tools pins metrics-server, which serves metrics.k8s.io to the HPA.
package tools

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
