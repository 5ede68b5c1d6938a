// Command pause is the pod sandbox's process for the end-to-end node (`make e2e-node`): it
// sleeps until SIGTERM or SIGINT, like Kubernetes' own pause image, so that the node needs no
// registry. `make pause-image` packs it with cmd image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
