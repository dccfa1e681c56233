// Command manager is kubeplex's operator: it reconciles LogApps and LogDrains into the
// routing table the routers run, issues tokens, checks drain URLs against the URL
// policy, reports delivery health in LogDrain status and serves the pod-injection
// webhook.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubeplex/kubeplex/controllers/manager"
)

func main() {
	opts, err := manager.ParseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts.Zap)))
	if err := manager.Run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.Error(err, "manager failed")
		os.Exit(1)
	}
}
