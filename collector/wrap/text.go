package wrap

import (
	"strconv"
	"syscall"
	"time"
)

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	syscall.SIGCHLD: "SIGCHLD", syscall.SIGCONT: "SIGCONT", syscall.SIGSTOP: "SIGSTOP",
	syscall.SIGTSTP: "SIGTSTP", syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
	syscall.SIGWINCH: "SIGWINCH", syscall.SIGSYS: "SIGSYS",
}

// SignalName returns the conventional name of sig (SIGTERM), or SIG<number>.
func SignalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// ExitText is the process event for e, in the voice of a process manager.
func ExitText(e Exit) string {
	rt := e.Runtime.Round(time.Millisecond).String()
	if e.Signal != 0 {
		return "Process killed by " + SignalName(e.Signal) + " after " + rt
	}
	return "Process exited with status " + strconv.Itoa(e.Code) + " after " + rt
}
