//go:build !linux

package syslog

import "syscall"

func setNotSentLowat(syscall.RawConn, int) {}

func unacked(syscall.RawConn) int { return -1 }
