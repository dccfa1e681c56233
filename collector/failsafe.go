package collector

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"syscall"
)

// FailSafe runs the worker of a `collector run [flags] -- CMD ARGS…` command line
// whose logging could not be set up (bad flags or environment, no router URL, an
// unreadable token file): a logging problem must never become an app outage. It says
// loudly on stderr what is wrong (there is no stream to say it in-band) and replaces
// the collector with the worker, whose output then goes where the collector's would
// have gone (the container log). It returns only if argv is no run command or the
// worker cannot be started either.
func FailSafe(argv []string, cause error, stderr io.Writer) error {
	if len(argv) == 0 || argv[0] != CmdRun {
		return cause
	}
	i := slices.Index(argv, "--")
	if i < 0 || i == len(argv)-1 {
		return cause
	}
	worker := argv[i+1:]
	path, err := exec.LookPath(worker[0])
	if err != nil {
		return fmt.Errorf("%w; and the worker cannot be started: %w", cause, err)
	}
	_, _ = fmt.Fprintf(stderr, "collector: LOGGING IS OFF for this worker: %v\n"+
		"collector: starting %q without log shipping; its output goes to the container log only\n", cause, worker[0])
	// Exec keeps the PID, so signals and the exit status are the worker's own.
	return syscall.Exec(path, worker, os.Environ())
}
