// Command collector is kubeplex's per-pod log collector. See docs/collector.md.
//
//	collector run [flags] -- CMD ARGS…   run CMD, capture its output and lifecycle
//	collector sidecar [flags]            batch and ship, trace listeners, CRI tail
//	collector install DEST               copy this binary to DEST (init container)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/kubeplex/kubeplex/collector"
)

func main() {
	collector.LimitProcs()
	cmd, err := collector.ParseOptions(os.Args[1:], os.LookupEnv)
	if text, ok := collector.Help(err); ok {
		fmt.Print(text)
		return
	}
	if err == nil {
		err = cmd.Execute(context.Background())
	}
	var worker *collector.WorkerExit
	if errors.As(err, &worker) {
		worker.Exit()
	}
	if err != nil {
		// Run fails only before its worker starts: start the worker anyway.
		fmt.Fprintf(os.Stderr, "collector: %v\n", collector.FailSafe(os.Args[1:], err, os.Stderr))
		os.Exit(2)
	}
}
