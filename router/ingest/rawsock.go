package ingest

import (
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// rawSock does a plain TCP connection's hot-path system calls (read, the
// coalescing wait, the low-water mark) with syscall.RawSyscall instead of through
// the runtime's syscall entry and exit.
//
// Why: every entry into a system call through syscall.Syscall wakes the runtime's
// monitor thread (sysmon) when it had gone to sleep because every P was idle, and
// sysmon then polls every 20 µs for at least a millisecond before it backs off. A
// connection at a light, steady rate makes the process go idle and wake again
// every few hundred microseconds, so sysmon never backs off: at 10,000 msgs/s a
// quarter of the router's CPU was sysmon's usleep and futex calls (perf record,
// docs/router.md "Issue 15"). A read of a non-blocking socket never blocks, so
// the runtime gains nothing from knowing about it.
//
// The coalescing wait is a ppoll(2) on the socket with the low-water mark raised:
// it returns when the window is over, or as soon as that much is queued. Done raw, it holds the goroutine's P for at most the window;
// rawWaiters bounds how many do that at once (the others wait through the
// runtime, which can hand their P to other goroutines).
type rawSock struct {
	raw  syscall.RawConn
	mark int // the socket's SO_RCVLOWAT as last set; 0 and 1 both mean the default

	// Arguments and results of the functions below, made once so that calls
	// allocate nothing.
	p     []byte
	n     int
	errno syscall.Errno
	want  int
	wait  syscall.Timespec
	block bool // wait through the runtime (syscall.Syscall6), not raw

	readFn func(fd uintptr) bool
	waitFn func(fd uintptr)
}

// rawWaiters counts coalescing waits that hold their P (raw ppoll).
var rawWaiters atomic.Int32

// maxRawWaiters leaves at least one P to the rest of the process whenever there
// are two or more.
func maxRawWaiters() int32 { return int32(max(1, runtime.GOMAXPROCS(0)-1)) }

func newRawSock(raw syscall.RawConn) *rawSock {
	if raw == nil {
		return nil
	}
	s := &rawSock{raw: raw}
	s.readFn = func(fd uintptr) bool {
		for {
			var n uintptr
			var e syscall.Errno
			if len(s.p) > 0 {
				n, _, e = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.p[0])), uintptr(len(s.p)))
			}
			switch e {
			case 0:
				s.n, s.errno = int(n), 0
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if s.mark > 1 {
					// The read will park until the socket is readable: with the mark
					// raised that would wait for a window's worth; restore the
					// default and look once more (bytes may have come meanwhile).
					s.setMark(fd, 1)
					continue
				}
				return false // park until readable, then call again
			default:
				s.n, s.errno = 0, e
				return true
			}
		}
	}
	s.waitFn = func(fd uintptr) {
		if s.mark != s.want {
			s.setMark(fd, s.want)
		}
		pfd := struct {
			fd             int32
			events, revent int16
		}{fd: int32(fd), events: 0x1} // POLLIN
		if s.block {
			_, _, _ = syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&s.wait)), 0, 0, 0)
		} else {
			_, _, _ = syscall.RawSyscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&s.wait)), 0, 0, 0)
		}
		// Interrupted by a signal or not, the read comes next.
	}
	return s
}

func (s *rawSock) setMark(fd uintptr, bytes int) {
	v := int32(max(bytes, 1))
	_, _, e := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, fd, syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, uintptr(unsafe.Pointer(&v)), 4, 0)
	if e == 0 {
		s.mark = int(v)
	}
}

// read is net.Conn.Read for the socket: it waits (parked in the runtime's poller,
// with the connection's read deadline) until something is there.
func (s *rawSock) read(p []byte) (int, error) {
	s.p = p
	err := s.raw.Read(s.readFn)
	s.p = nil
	if err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, os.NewSyscallError("read", s.errno)
	}
	if s.n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return s.n, nil
}

// waitFor waits up to d for bytes to be queued (at least 1), then returns.
func (s *rawSock) waitFor(d time.Duration, bytes int) {
	s.want = max(bytes, 1)
	s.wait = syscall.NsecToTimespec(int64(d))
	s.block = rawWaiters.Add(1) > maxRawWaiters()
	_ = s.raw.Control(s.waitFn) // a closed socket: the read reports it
	rawWaiters.Add(-1)
}
