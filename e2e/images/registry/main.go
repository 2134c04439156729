// Command registry is the container registry of e2e/cluster's real nodes: the OCI
// distribution API of go-containerregistry's pkg/registry, blobs on disk, over plain HTTP on
// an address of the stack's own network. Nothing can be pulled from the internet here, so
// the stack's images are pushed to it (imagebuild push) and the nodes' containerd pulls from
// it as the mirror of every registry the images name, as a real cluster pulls: the pull
// policy Always, which tenant namespaces enforce, works as it does in production.
//
//	registry -listen 10.246.0.1:5000 -dir DIR
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5000", "address to serve on")
	dir := flag.String("dir", "", "directory for blobs (manifests are kept in memory)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	handler := registry.New(
		registry.WithBlobHandler(registry.NewDiskBlobHandler(*dir)),
		registry.Logger(log.New(os.Stderr, "", log.LstdFlags)),
	)
	server := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("serving on %s, blobs in %s", *listen, *dir)
	log.Fatal(server.ListenAndServe())
}
