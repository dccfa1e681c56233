package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Frames are 204 bytes: "200 " and a 200-byte RFC 5424 record whose APP-NAME is the
// app's ingest token (how the router maps syslog input to an app) and whose text ends
// with the send time in 19 digits (nanoseconds), for latency.
const (
	frameSize  = 204
	recordSize = 200
	blockLen   = 5000
)

func appToken(i int) string { return fmt.Sprintf("t.00000000-0000-4000-8000-%012d", i) }

func appendFrame(dst []byte, tok string, seq int, sent int64) []byte {
	start := len(dst)
	dst = append(dst, "200 <190>1 2026-11-25T10:00:00.123456+00:00 bench-host "...)
	dst = append(dst, tok...)
	dst = append(dst, " web.1 - - seq="...)
	dst = appendPadded(dst, int64(seq), 10)
	dst = append(dst, ' ')
	for len(dst)-start < frameSize-19 {
		dst = append(dst, 'x')
	}
	dst = appendPadded(dst, sent, 19)
	if len(dst)-start != frameSize {
		panic(fmt.Sprintf("frame is %d bytes", len(dst)-start))
	}
	return dst
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// load is what a bulk sender writes: how many frames per write(2) (0: blocks of
// blockLen frames, as a buffering shipper does; 1: one frame per write, as syslog
// clients and most collectors do) and over how many apps the frames rotate (each
// frame the next app's, the worst case for per-app batching).
type load struct {
	perWrite int
	apps     int
}

func (l load) block() []byte {
	apps := max(l.apps, 1)
	toks := make([]string, apps)
	for i := range toks {
		toks[i] = appToken(i)
	}
	var block []byte
	for i := range blockLen {
		block = appendFrame(block, toks[i%apps], i, 0)
	}
	return block
}

// sendBulk writes n frames spread over conns connections, as fast as the relay reads
// them, and returns when all are written.
func sendBulk(ctx context.Context, addr string, conns, n int, l load) error {
	block := l.block()
	per := l.perWrite
	if per <= 0 {
		per = blockLen
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for k := range conns {
		count := n / conns
		if k == 0 {
			count += n % conns
		}
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- fmt.Errorf("dial relay: %w", err)
				return
			}
			defer func() { _ = c.Close() }() // the sink counts what arrived
			off := 0
			for count > 0 && ctx.Err() == nil {
				m := min(count, per, blockLen-off)
				if _, err := c.Write(block[off*frameSize : (off+m)*frameSize]); err != nil {
					errs <- fmt.Errorf("write to relay: %w", err)
					return
				}
				count -= m
				off = (off + m) % blockLen
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sendPaced writes frames for app 0 at rate frames/s for d over c, one frame per
// write(2) as a syslog client does, each stamped with its send time; it returns the
// number sent. It waits with nanosleep(2): Go's timers round waits under 1 ms up to
// 1 ms when the process is idle, which would turn the sender into a batcher.
func sendPaced(ctx context.Context, c net.Conn, rate int, d time.Duration) (int, error) {
	tok := appToken(0)
	start := time.Now()
	gap := time.Second / time.Duration(rate)
	sent := 0
	buf := make([]byte, 0, frameSize)
	for ctx.Err() == nil {
		el := time.Since(start)
		if el >= d {
			break
		}
		due := int(float64(rate) * el.Seconds())
		for ; sent < due; sent++ {
			buf = appendFrame(buf[:0], tok, sent, time.Now().UnixNano())
			if _, err := c.Write(buf); err != nil {
				return sent, fmt.Errorf("write to relay: %w", err)
			}
		}
		ts := syscall.NsecToTimespec(int64(gap))
		_ = syscall.Nanosleep(&ts, nil) // woken early by a signal: the loop catches up
	}
	return sent, nil
}

// sendHistory writes 1500 frames for each of apps apps, one app after another.
func sendHistory(ctx context.Context, addr string, apps int) (int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("dial relay: %w", err)
	}
	defer func() { _ = c.Close() }() // the router's metrics count what arrived
	var buf []byte
	n := 0
	for a := 0; a < apps && ctx.Err() == nil; a++ {
		buf = buf[:0]
		tok := appToken(a)
		for i := range 1500 {
			buf = appendFrame(buf, tok, i, 0)
		}
		if _, err := c.Write(buf); err != nil {
			return n, fmt.Errorf("write to router: %w", err)
		}
		n += 1500
	}
	return n, nil
}
