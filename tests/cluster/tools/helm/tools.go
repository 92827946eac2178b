//go:build tools

// Package tools pins helm, used to install and test the chart.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
