// Command worker is the sample worker image of the node suite (test/node): a process
// that writes numbered lines to stdout and stderr, and then exits with a given code,
// runs out of memory, or keeps going. Its behaviour comes from flags so one image
// covers every case, and the pod spec always names its command (the webhook wraps
// only commands it can see).
//
//	worker -prefix run1 -lines 100 -every 10ms -exit 3
//
// Line i (from 1) goes to stderr when i is a multiple of -stderr-every, else to
// stdout, as "<prefix> <out|err> <i>" (plus " ppp…" with -pad); -big N adds one
// line of N bytes after them.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	prefix := flag.String("prefix", "worker", "first word of every line")
	lines := flag.Int("lines", 10, "numbered lines to write; -1 writes until stopped")
	every := flag.Duration("every", 10*time.Millisecond, "pause between lines")
	stderrEvery := flag.Int("stderr-every", 3, "every n-th line goes to stderr (0: none)")
	big := flag.Int("big", 0, "after the numbered lines, write one stdout line of this many bytes")
	pad := flag.Int("pad", 0, "append a space and this many bytes to every numbered line")
	exit := flag.Int("exit", -1, "exit with this code after writing; -1 keeps running until SIGTERM")
	oom := flag.Bool("oom", false, "after writing, allocate memory until the OOM killer stops the process")
	flag.Parse()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	out := bufio.NewWriter(os.Stdout)
	tail := ""
	if *pad > 0 {
		tail = " " + strings.Repeat("p", *pad)
	}
	for i := 1; *lines < 0 || i <= *lines; i++ {
		select {
		case <-stop:
			fmt.Printf("%s stopping after %d\n", *prefix, i-1)
			os.Exit(0)
		default:
		}
		if *stderrEvery > 0 && i%*stderrEvery == 0 {
			// Flush stdout first so the two streams keep their relative order.
			_ = out.Flush()
			_, _ = fmt.Fprintf(os.Stderr, "%s err %d%s\n", *prefix, i, tail)
		} else {
			_, _ = fmt.Fprintf(out, "%s out %d%s\n", *prefix, i, tail)
			_ = out.Flush()
		}
		if *every > 0 {
			time.Sleep(*every)
		}
	}
	if *big > 0 {
		_, _ = fmt.Fprintf(out, "%s big %s\n", *prefix, strings.Repeat("x", *big))
	}
	_ = out.Flush()
	fmt.Printf("%s done\n", *prefix)
	if *oom {
		for {
			b := make([]byte, 16<<20)
			for j := range b {
				if j%4096 == 0 {
					b[j] = 1
				}
			}
			held = append(held, b)
		}
	}
	if *exit >= 0 {
		os.Exit(*exit)
	}
	<-stop
	fmt.Printf("%s stopping\n", *prefix)
}

// held keeps the -oom allocations reachable, so the kernel, not the garbage
// collector, ends the process.
var held [][]byte
