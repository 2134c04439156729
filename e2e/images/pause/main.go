// Command pause is the sandbox image's process on e2e/cluster's real nodes: it holds a
// pod's namespaces open until it is told to stop, as registry.k8s.io/pause does. Built
// statically (CGO_ENABLED=0), so the image is this one file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of the pod's PID namespace (shareProcessNamespace) it inherits orphans:
	// reap them so none stays a zombie.
	child := make(chan os.Signal, 1)
	signal.Notify(child, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			return
		case <-child:
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
