// Command kubeplex is the user's CLI for kubeplex: logs (history and tail through a
// LogSession), drains, apps and a local web console. Installed as kubectl-kubeplex it
// is also the kubectl plugin `kubectl kubeplex`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubeplex/kubeplex/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[0], os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
