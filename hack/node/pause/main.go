// Command pause is the pod sandbox ("infra") process of the local node built by
// hack/node/up.sh: it holds the pod's namespaces open and does nothing else. The
// node has no registry to pull registry.k8s.io/pause from, so containerd's
// sandbox_image is this binary, imported as an image like kubeplex's own.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	// As PID 1 of the pod it also inherits orphans (with a shared PID namespace);
	// SIGCHLD wakes it to reap them so none stays a zombie.
	chld := make(chan os.Signal, 8)
	signal.Notify(chld, syscall.SIGCHLD)
	for {
		select {
		case <-sigs:
			os.Exit(0)
		case <-chld:
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
