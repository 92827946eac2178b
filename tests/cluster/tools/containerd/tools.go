//go:build tools

// Package tools pins the container runtime of the local cluster's real node:
// containerd v2, its ctr client and the runc shim (runc itself comes from
// Debian), so `go mod tidy` keeps their dependency graph in go.sum.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
