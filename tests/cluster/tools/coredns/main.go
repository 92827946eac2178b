// CoreDNS for the local cluster's real node, with only the plugins its
// Corefile uses (tests/cluster/lib/node.sh writes it). The stock build links
// every plugin, cloud DNS providers included; this one builds in a fraction
// of the time. The directive order is CoreDNS's own (core/dnsserver/
// zdirectives.go), filtered: a plugin's place in it decides when it runs.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	dnsserver.Directives = []string{
		"bind", "ready", "health", "errors", "log", "cache", "kubernetes", "forward",
	}
}

func main() { coremain.Run() }
