// Package lines cuts a byte stream into log lines the way Logplex expects them: one
// message per line, and lines longer than 10,000 bytes split into several messages.
package lines

import (
	"bytes"
	"unicode/utf8"
)

// MaxLine is Logplex's message size: longer lines become several messages.
const MaxLine = 10000

// Splitter turns writes into lines. It is not safe for concurrent use; each stream
// (stdout, stderr) has its own.
type Splitter struct {
	// Max is the longest message; 0 means MaxLine.
	Max int
	// Emit receives each line without its terminator. The slice is only valid during
	// the call.
	Emit func(line []byte)
	buf  []byte
}

// Write feeds p; it never fails and always consumes all of p.
func (s *Splitter) Write(p []byte) (int, error) {
	n := len(p)
	limit := s.max()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.buf = append(s.buf, p...)
			s.cut(limit)
			return n, nil
		}
		if len(s.buf) == 0 && i <= limit {
			s.Emit(trimCR(p[:i])) // the common case: a whole line, no copy
		} else {
			s.buf = append(s.buf, p[:i]...)
			s.cut(limit)
			s.Emit(trimCR(s.buf))
			s.buf = s.buf[:0]
		}
		p = p[i+1:]
	}
	return n, nil
}

// Flush emits a partial last line, if any: a worker's last words without a newline.
func (s *Splitter) Flush() {
	if len(s.buf) > 0 {
		s.Emit(trimCR(s.buf))
		s.buf = s.buf[:0]
	}
}

func (s *Splitter) max() int {
	if s.Max > 0 {
		return s.Max
	}
	return MaxLine
}

// cut emits full-size pieces from the head of buf while it holds more than limit
// bytes, so an endless line costs at most limit bytes of memory.
func (s *Splitter) cut(limit int) {
	for len(s.buf) > limit {
		at := Cut(s.buf, limit)
		s.Emit(s.buf[:at])
		s.buf = append(s.buf[:0], s.buf[at:]...)
	}
}

// Cut returns where to split b so that the first piece is at most limit bytes long,
// moving back to a UTF-8 boundary when that costs at most 3 bytes, so valid UTF-8 text
// stays valid in both pieces.
func Cut(b []byte, limit int) int {
	if len(b) <= limit {
		return len(b)
	}
	for at := limit; at > limit-utf8.UTFMax && at > 0; at-- {
		if utf8.RuneStart(b[at]) {
			return at
		}
	}
	return limit
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}
