// Command router is kubeplex's data plane: it ingests logs, keeps per-app history and
// delivers to drains, configured by the routing table the manager writes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubeplex/kubeplex/router"
)

func main() {
	o, err := router.ParseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := router.Run(ctx, o); err != nil {
		o.Logger.Error("router failed", "err", err)
		os.Exit(1)
	}
}
