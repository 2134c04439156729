// Command coredns is the cluster DNS of e2e/cluster's real nodes: CoreDNS built from its
// Go module with only the plugins a cluster's DNS needs (the kubernetes plugin answers
// for cluster.local; nothing is forwarded, so pods resolve only the cluster's names).
//
// The plugin order below is CoreDNS's own (plugin.cfg) restricted to what is linked.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	dnsserver.Directives = []string{
		"reload",
		"ready",
		"health",
		"errors",
		"log",
		"cache",
		"loadbalance",
		"kubernetes",
	}
}

func main() { coremain.Run() }
