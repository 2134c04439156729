// Command localk8s is a multi-call binary bundling the pieces of a local
// Kubernetes control plane used by Landlord's end-to-end tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kubectl.
//
// There is no container runtime on the test machines, so the control plane
// runs as plain processes (kwok plays the nodes). Linking everything into one
// binary keeps the build cache to a single artifact keyed by version.
//
// The component is chosen by the basename of argv[0] (so symlinks named
// "kubectl", "etcd", ... work) or, failing that, by the first argument:
//
//	localk8s kube-apiserver --etcd-servers=... ...
//	ln -s localk8s kubectl && ./kubectl get pods
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	_ "time/tzdata" // CronJob time zone support, as in the upstream mains.

	"go.etcd.io/etcd/server/v3/etcdmain"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as upstream.
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics, as upstream.
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream.
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// Each entry mirrors the body of the corresponding upstream main(); it sees
// os.Args as if it had been invoked directly under its own name.
var components = map[string]func() int{
	"etcd": func() int {
		etcdmain.Main(os.Args) // exits the process itself on error
		return 0
	},
	"kube-apiserver": func() int {
		return cli.Run(apiserver.NewAPIServerCommand())
	},
	"kube-controller-manager": func() int {
		return cli.Run(controllermanager.NewControllerManagerCommand())
	},
	"kube-scheduler": func() int {
		return cli.Run(scheduler.NewSchedulerCommand())
	},
	"kubelet": func() int {
		return cli.Run(kubelet.NewKubeletCommand(context.Background()))
	},
	"kube-proxy": func() int {
		return cli.Run(proxy.NewProxyCommand())
	},
	"kubectl": func() int {
		// Upstream sets the verbosity before building the command so
		// that klog works during plugin / kuberc handling.
		logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
		if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
			kubectlutil.CheckErr(err) // prints and exits non-zero
		}
		return 0
	},
}

func names() string {
	n := make([]string, 0, len(components))
	for k := range components {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

func main() {
	name := filepath.Base(os.Args[0])
	run, ok := components[name]
	if !ok {
		if len(os.Args) < 2 {
			fmt.Fprintf(os.Stderr, "usage: %s <component> [flags...]\ncomponents: %s\n", name, names())
			os.Exit(2)
		}
		name = os.Args[1]
		if run, ok = components[name]; !ok {
			fmt.Fprintf(os.Stderr, "%s: unknown component %q (want one of: %s)\n", filepath.Base(os.Args[0]), name, names())
			os.Exit(2)
		}
		// Drop our own argv[0] so the component sees [name, flags...].
		os.Args = os.Args[1:]
	}
	os.Exit(run())
}
