package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
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

// sendBulk writes n frames for app 0 spread over conns connections, as fast as the
// relay reads them, and returns when all are written.
func sendBulk(ctx context.Context, addr string, conns, n int) error {
	var block []byte
	for i := range blockLen {
		block = appendFrame(block, appToken(0), i, 0)
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
			for count > 0 && ctx.Err() == nil {
				m := min(count, blockLen)
				if _, err := c.Write(block[:m*frameSize]); err != nil {
					errs <- fmt.Errorf("write to relay: %w", err)
					return
				}
				count -= m
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// sendPaced writes frames for app 0 at rate frames/s for d over c, each stamped with
// its send time; it returns the number sent.
func sendPaced(ctx context.Context, c net.Conn, rate int, d time.Duration) (int, error) {
	tok := appToken(0)
	start := time.Now()
	sent := 0
	var buf []byte
	for ctx.Err() == nil {
		el := time.Since(start)
		if el >= d {
			break
		}
		due := int(float64(rate) * el.Seconds())
		if due > sent {
			buf = buf[:0]
			now := time.Now().UnixNano()
			for ; sent < due; sent++ {
				buf = appendFrame(buf, tok, sent, now)
			}
			if _, err := c.Write(buf); err != nil {
				return sent, fmt.Errorf("write to relay: %w", err)
			}
		}
		time.Sleep(200 * time.Microsecond)
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
