// Package wrap runs the worker as a child process: its stdout and stderr are copied to
// the collector's own (so kubectl logs keeps working) and cut into lines, and its
// end is reported as an exit code or a signal. When the collector is PID 1 of its
// container it also reaps orphaned grandchildren, as an init must.
package wrap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector/lines"
)

// Stream names the child's output stream a line came from.
type Stream int

// The child's streams.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// Options describe the child to run.
type Options struct {
	Args []string
	// Env of the child; nil inherits the collector's.
	Env []string
	// Stdout and Stderr receive an exact copy of the child's output (nil: discard).
	Stdout, Stderr io.Writer
	// Line receives each line, split at MaxLine bytes. It is called from one goroutine
	// per stream, so lines of one stream arrive in order. t is when it was read.
	Line    func(s Stream, t time.Time, line []byte)
	MaxLine int
	// PipeGrace bounds how long output is still read after the child exits: a
	// grandchild may hold the pipes open forever [1s].
	PipeGrace time.Duration
}

// Exit is how the child ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal killed the child.
	Code   int
	Signal syscall.Signal
	// Runtime is the time from start to exit.
	Runtime time.Duration
}

// coalesce is how long a reader lets output gather after a short read, and
// pipeSize the pipe buffer that holds it meanwhile: 256 KiB is a quarter second of a
// worker printing 1 MB/s, so the worker does not wait on the collector's pauses.
const (
	coalesce = 20 * time.Millisecond
	pipeSize = 256 << 10
)

// Child is a running worker.
type Child struct {
	Pid     int
	Started time.Time

	proc    *os.Process
	opts    Options
	readers sync.WaitGroup
	pipes   []*os.File
	exited  chan Exit
}

// Start starts the child with stdin inherited and stdout/stderr captured.
func Start(opts Options) (*Child, error) {
	if len(opts.Args) == 0 {
		return nil, errors.New("start child: no command")
	}
	if opts.PipeGrace <= 0 {
		opts.PipeGrace = time.Second
	}
	path, err := lookPath(opts.Args[0], opts.Env)
	if err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start child: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		return nil, fmt.Errorf("start child: %w", err)
	}
	growPipe(outR)
	growPipe(errR)
	c := &Child{opts: opts, pipes: []*os.File{outR, errR}, exited: make(chan Exit, 1)}
	pid1 := os.Getpid() == 1
	var sigchld chan os.Signal
	if pid1 {
		// Subscribe before the child exists so its exit cannot be missed.
		sigchld = make(chan os.Signal, 8)
		signal.Notify(sigchld, syscall.SIGCHLD)
	}
	c.Started = time.Now()
	c.proc, err = os.StartProcess(path, opts.Args, &os.ProcAttr{
		Env:   opts.Env,
		Files: []*os.File{os.Stdin, outW, errW},
	})
	_ = outW.Close()
	_ = errW.Close()
	if err != nil {
		_ = outR.Close()
		_ = errR.Close()
		if sigchld != nil {
			signal.Stop(sigchld)
		}
		return nil, fmt.Errorf("start child: %w", err)
	}
	c.Pid = c.proc.Pid
	c.readers.Add(2)
	go c.read(Stdout, outR, opts.Stdout)
	go c.read(Stderr, errR, opts.Stderr)
	if pid1 {
		go c.reap(sigchld)
	} else {
		go c.wait()
	}
	return c, nil
}

// growPipe enlarges a pipe's buffer (Linux F_SETPIPE_SZ); when the system refuses,
// the default 64 KiB stays, which only makes the collector wake more often.
func growPipe(f *os.File) {
	const fSetPipeSz = 1031
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, pipeSize)
	})
}

func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathEnv := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("look up %q: executable file not found in $PATH", name)
}

func (c *Child) read(s Stream, r *os.File, tee io.Writer) {
	defer c.readers.Done()
	var now time.Time
	sp := lines.Splitter{Max: c.opts.MaxLine, Emit: func(line []byte) {
		if c.opts.Line != nil {
			c.opts.Line(s, now, line)
		}
	}}
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			now = time.Now()
			if tee != nil {
				// A failing copy (closed stdout) must not stop the capture.
				_, _ = tee.Write(buf[:n])
			}
			_, _ = sp.Write(buf[:n])
		}
		if err != nil {
			break
		}
		if n < len(buf)/2 {
			// A worker that writes one line per syscall would cost the collector a
			// wake-up, a read and a copy per line; letting a few milliseconds of
			// output gather in the pipe (64 KiB) turns them into one. The worker
			// never waits: its writes go into the pipe buffer meanwhile.
			time.Sleep(coalesce)
		}
	}
	if now.IsZero() {
		now = time.Now()
	}
	sp.Flush()
}

func (c *Child) wait() {
	st, err := c.proc.Wait()
	ws, ok := syscall.WaitStatus(0), false
	if err == nil {
		ws, ok = st.Sys().(syscall.WaitStatus)
	}
	if !ok {
		c.exited <- Exit{Code: 255, Runtime: time.Since(c.Started)}
		return
	}
	c.exited <- c.exit(ws)
}

// reap collects every zombie reparented to PID 1 and reports the child's own status.
func (c *Child) reap(sigchld chan os.Signal) {
	defer signal.Stop(sigchld)
	for range sigchld {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			if pid == c.Pid {
				c.exited <- c.exit(ws)
				// Keep reaping: grandchildren may still be running.
				go c.reapRest(sigchld)
				return
			}
		}
	}
}

func (c *Child) reapRest(sigchld chan os.Signal) {
	signal.Notify(sigchld, syscall.SIGCHLD)
	for range sigchld {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
		}
	}
}

func (c *Child) exit(ws syscall.WaitStatus) Exit {
	e := Exit{Code: ws.ExitStatus(), Runtime: time.Since(c.Started)}
	if ws.Signaled() {
		e.Code, e.Signal = -1, ws.Signal()
	}
	return e
}

// Signal sends sig to the child.
func (c *Child) Signal(sig os.Signal) error {
	if err := c.proc.Signal(sig); err != nil {
		return fmt.Errorf("signal child: %w", err)
	}
	return nil
}

// Wait waits for the child to exit and its output to be read (at most PipeGrace past
// the exit), then returns how it ended. Call it once.
func (c *Child) Wait() Exit {
	e := <-c.exited
	done := make(chan struct{})
	go func() { c.readers.Wait(); close(done) }()
	t := time.NewTimer(c.opts.PipeGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		// Closing the read ends wakes the readers; they flush their partial lines.
		for _, p := range c.pipes {
			_ = p.Close()
		}
		<-done
	}
	for _, p := range c.pipes {
		_ = p.Close()
	}
	return e
}

// Command renders args for a human, quoting the ones a shell would split.
func Command(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}
