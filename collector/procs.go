package collector

import (
	"os"
	"runtime"
)

// LimitProcs runs the collector on one P unless GOMAXPROCS says otherwise. One P is
// plenty for a per-pod agent and spares the worker's cores the scheduler's spinning
// (idle Ps polling for work after every wake-up), which was most of the collector's
// CPU at 10,000 lines/s (docs/benchmarks.md).
func LimitProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}
