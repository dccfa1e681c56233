package syslog

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setNotSentLowat bounds the bytes a connection holds that were not sent yet
// (TCP_NOTSENT_LOWAT): a write waits once that many are queued, instead of filling
// a send buffer that autotuning grows to megabytes. What was sent and not yet
// acknowledged is not limited, so a distant receiver's throughput is not either.
func setNotSentLowat(rc syscall.RawConn, n int) {
	_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, n) })
}

// unacked returns the bytes the kernel still holds for a connection: written, and
// not yet acknowledged by the receiver (SIOCOUTQ); -1 when it cannot tell.
func unacked(rc syscall.RawConn) int {
	n := -1
	_ = rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			n = v
		}
	})
	return n
}

// ackedBytes returns the bytes of data the receiver acknowledged on a connection
// (tcpi_bytes_acked); -1 when it cannot tell. Unlike SIOCOUTQ it still answers once
// the receiver reset the connection and the kernel dropped what it held.
func ackedBytes(rc syscall.RawConn) int64 {
	n := int64(-1)
	_ = rc.Control(func(fd uintptr) {
		if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = int64(ti.Bytes_acked)
		}
	})
	return n
}
