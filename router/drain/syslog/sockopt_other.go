//go:build !linux

package syslog

import "syscall"

func setNotSentLowat(syscall.RawConn, int) {}

func unacked(syscall.RawConn) int { return -1 }

func ackedBytes(syscall.RawConn) int64 { return -1 }
