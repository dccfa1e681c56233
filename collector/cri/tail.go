package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kubeplex/kubeplex/collector/lines"
)

// Position is where a tailer has delivered up to: the file (by inode, since rotation
// renames it) and the offset just past the last full line whose message was delivered
// or counted as lost.
type Position struct {
	File   string `json:"file"`
	Inode  uint64 `json:"inode"`
	Offset int64  `json:"offset"`
}

// PushFunc hands one message to the shipper. It may wait for room (the log file is
// the buffer); commit, when non-nil, must run once the message is settled.
type PushFunc func(ctx context.Context, stderr bool, t time.Time, text []byte, commit func()) error

// Tailer follows the log files of one container.
type Tailer struct {
	// Dir is the container's log directory, /var/log/pods/<ns>_<pod>_<uid>/<container>.
	Dir  string
	Push PushFunc
	// Start is where a previous run stopped (zero: from the beginning).
	Start Position
	// Poll is how often files are checked for new data [200ms].
	Poll time.Duration
	Log  *slog.Logger

	cur     *os.File
	curName string
	curIno  uint64
	readOff int64  // offset of the next byte to read from cur
	buf     []byte // bytes read but not yet a complete line
	join    []byte // content of partial (P) lines waiting for their F
	joinT   time.Time
	joinErr bool
	done    map[uint64]bool

	resumed bool // Start has been used

	mu      sync.Mutex
	acked   Position
	ackInit bool
}

// Acked returns the position of the last settled message.
func (t *Tailer) Acked() Position {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ackInit {
		return t.Start
	}
	return t.acked
}

func (t *Tailer) ack(p Position) {
	t.mu.Lock()
	t.acked, t.ackInit = p, true
	t.mu.Unlock()
}

func (t *Tailer) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

// Run tails until ctx ends, or, once stop is closed, until every file has been read to
// its end (the sidecar's last pass when the pod stops).
func (t *Tailer) Run(ctx context.Context, stop <-chan struct{}) error {
	poll := t.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	t.done = map[uint64]bool{}
	defer func() {
		if t.cur != nil {
			_ = t.cur.Close()
		}
	}()
	stopping := false
	for {
		if t.cur == nil {
			if err := t.open(); err != nil {
				t.log().Debug("open container log", "dir", t.Dir, "error", err)
			}
		}
		progressed := false
		if t.cur != nil {
			n, err := t.readMore(ctx)
			if err != nil {
				return err
			}
			progressed = n > 0
			if !progressed {
				switched, err := t.maybeSwitch()
				if err != nil {
					t.log().Warn("follow container log", "dir", t.Dir, "error", err)
				}
				progressed = switched
			}
		}
		if progressed {
			continue
		}
		if stopping {
			return t.flushJoin(ctx)
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-stop:
			timer.Stop()
			stopping = true
			stop = nil
		case <-timer.C:
		}
	}
}

// open opens the file to start from: the one Start names (by inode), or the oldest
// uncompressed file when there is no usable position.
func (t *Tailer) open() error {
	files, err := listFiles(t.Dir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("no log file yet")
	}
	pick, off := files[0], int64(0)
	if t.Start.Inode != 0 && !t.resumed {
		found := false
		for i, f := range files {
			if f.ino == t.Start.Inode && f.size >= t.Start.Offset {
				pick, off, found = f, t.Start.Offset, true
				for _, g := range files[:i] {
					t.done[g.ino] = true
				}
				break
			}
		}
		if !found {
			t.log().Warn("saved position not found, lines may be repeated or missing",
				"dir", t.Dir, "file", t.Start.File, "offset", t.Start.Offset)
		}
	}
	t.resumed = true
	return t.openAt(pick, off)
}

func (t *Tailer) openAt(f fileInfo, off int64) error {
	fh, err := os.Open(filepath.Join(t.Dir, f.name))
	if err != nil {
		return fmt.Errorf("open container log: %w", err)
	}
	// fh is only read: a Close error on the paths that give it up loses nothing.
	st, err := fh.Stat()
	if err != nil {
		_ = fh.Close()
		return fmt.Errorf("stat container log: %w", err)
	}
	if inode(st) != f.ino {
		// Renamed between listing and opening: list again next time.
		_ = fh.Close()
		return errors.New("log file changed while opening")
	}
	if _, err := fh.Seek(off, io.SeekStart); err != nil {
		_ = fh.Close()
		return fmt.Errorf("seek container log: %w", err)
	}
	if t.cur != nil {
		_ = t.cur.Close()
	}
	t.cur, t.curName, t.curIno, t.readOff = fh, f.name, f.ino, off
	t.buf = t.buf[:0]
	return nil
}

// readMore reads what is available and pushes every complete line.
func (t *Tailer) readMore(ctx context.Context) (int, error) {
	total := 0
	chunk := make([]byte, 64*1024)
	for {
		n, err := t.cur.Read(chunk)
		if n > 0 {
			total += n
			t.readOff += int64(n)
			t.buf = append(t.buf, chunk[:n]...)
			if err := t.lines(ctx); err != nil {
				return total, err
			}
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return total, fmt.Errorf("read container log: %w", err)
			}
			return total, nil
		}
	}
}

// lines consumes the complete lines at the head of buf.
func (t *Tailer) lines(ctx context.Context) error {
	start := 0
	for {
		i := indexNL(t.buf[start:])
		if i < 0 {
			break
		}
		line := t.buf[start : start+i]
		start += i + 1
		// The offset just past this line: buf ends at readOff.
		end := t.readOff - int64(len(t.buf)-start)
		if err := t.line(ctx, line, end); err != nil {
			return err
		}
	}
	t.buf = append(t.buf[:0], t.buf[start:]...)
	return nil
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func (t *Tailer) line(ctx context.Context, raw []byte, end int64) error {
	l, err := ParseLine(raw)
	if err != nil {
		t.log().Debug("skip malformed CRI line", "dir", t.Dir, "offset", end)
		return nil
	}
	if len(t.join) == 0 {
		t.joinT, t.joinErr = l.Time, l.Stderr
	}
	t.join = append(t.join, l.Content...)
	// A run of partial lines costs at most one message of memory.
	for len(t.join) > lines.MaxLine {
		at := lines.Cut(t.join, lines.MaxLine)
		if err := t.Push(ctx, t.joinErr, t.joinT, t.join[:at], nil); err != nil {
			return err
		}
		t.join = append(t.join[:0], t.join[at:]...)
	}
	if l.Partial {
		return nil
	}
	pos := Position{File: t.curName, Inode: t.curIno, Offset: end}
	err = t.Push(ctx, t.joinErr, t.joinT, t.join, func() { t.ack(pos) })
	t.join = t.join[:0]
	return err
}

func (t *Tailer) flushJoin(ctx context.Context) error {
	if len(t.join) == 0 {
		return nil
	}
	pos := Position{File: t.curName, Inode: t.curIno, Offset: t.readOff - int64(len(t.buf))}
	err := t.Push(ctx, t.joinErr, t.joinT, t.join, func() { t.ack(pos) })
	t.join = t.join[:0]
	return err
}

// maybeSwitch moves to the next file once the current one is finished: after a
// rotation (the kubelet renamed it and the runtime writes a new one) or a container
// restart (a new <n>.log). The current file is finished once the next one has data —
// the runtime writes there only after it has reopened — or belongs to an older
// container run.
func (t *Tailer) maybeSwitch() (bool, error) {
	files, err := listFiles(t.Dir)
	if err != nil {
		return false, err
	}
	pos := -1
	for i, f := range files {
		if f.ino == t.curIno {
			pos = i
			break
		}
	}
	var next *fileInfo
	for i := pos + 1; i < len(files); i++ {
		if f := files[i]; f.ino != t.curIno && !t.done[f.ino] {
			next = &files[i]
			break
		}
	}
	if next == nil {
		return false, nil
	}
	cur := fileInfo{}
	if pos >= 0 {
		cur = files[pos]
	}
	if next.size == 0 && (pos < 0 || next.restart == cur.restart) {
		return false, nil
	}
	// Read whatever the runtime wrote before it reopened, then move on.
	if n, err := t.readMore(context.Background()); err != nil || n > 0 {
		return n > 0, err
	}
	if len(t.buf) > 0 {
		t.log().Warn("log file ended inside a line", "dir", t.Dir, "file", t.curName, "bytes", len(t.buf))
	}
	t.done[t.curIno] = true
	if err := t.openAt(*next, 0); err != nil {
		return false, err
	}
	return true, nil
}

type fileInfo struct {
	name    string
	ino     uint64
	size    int64
	restart int
	stamp   string // "" for the live file, the rotation stamp otherwise
}

// listFiles lists a container's log files oldest first: by restart count, then
// rotated files by stamp, then the live file. Compressed rotations are skipped: the
// kubelet only compresses files older than the newest rotation.
func listFiles(dir string) ([]fileInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list container logs: %w", err)
	}
	var out []fileInfo
	for _, e := range ents {
		name := e.Name()
		base, rest, ok := strings.Cut(name, ".log")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(base)
		if err != nil {
			continue
		}
		stamp := ""
		if rest != "" {
			if rest[0] != '.' || strings.HasSuffix(rest, ".gz") || strings.HasSuffix(rest, ".tmp") {
				continue
			}
			stamp = rest[1:]
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, fileInfo{name: name, ino: inode(info), size: info.Size(), restart: n, stamp: stamp})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.restart != b.restart {
			return a.restart < b.restart
		}
		if (a.stamp == "") != (b.stamp == "") {
			return b.stamp == ""
		}
		return a.stamp < b.stamp
	})
	return out, nil
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
