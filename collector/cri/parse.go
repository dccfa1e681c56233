// Package cri tails the container log files the kubelet keeps under /var/log/pods in
// the CRI logging format, re-joining partial lines, following rotation and container
// restarts, and persisting a read offset so a restarted collector neither loses nor
// repeats lines.
package cri

import (
	"bytes"
	"errors"
	"time"
)

// Line is one line of a CRI log file:
//
//	2026-11-25T10:00:00.123456789Z stdout F the text
//
// (timestamp in RFC 3339 with nanoseconds, the stream, tags separated by ':' whose
// first is P for a partial line or F for a full one, then the content).
type Line struct {
	Time    time.Time
	Stderr  bool
	Partial bool
	// Content is a view into the parsed bytes.
	Content []byte
}

// ErrMalformed is returned for a line that is not in the CRI format.
var ErrMalformed = errors.New("malformed CRI log line")

// ParseLine parses one line without its trailing newline.
func ParseLine(b []byte) (Line, error) {
	var l Line
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 {
		return l, ErrMalformed
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[:sp]))
	if err != nil {
		return l, ErrMalformed
	}
	l.Time = t
	b = b[sp+1:]
	switch {
	case bytes.HasPrefix(b, []byte("stdout ")):
		b = b[7:]
	case bytes.HasPrefix(b, []byte("stderr ")):
		l.Stderr = true
		b = b[7:]
	default:
		return l, ErrMalformed
	}
	// Tags run to the next space, or to the end when the content is empty.
	end := bytes.IndexByte(b, ' ')
	tags := b
	if end >= 0 {
		tags, l.Content = b[:end], b[end+1:]
	}
	first := tags
	if i := bytes.IndexByte(tags, ':'); i >= 0 {
		first = tags[:i]
	}
	switch string(first) {
	case "F":
	case "P":
		l.Partial = true
	default:
		return Line{}, ErrMalformed
	}
	if l.Content == nil {
		l.Content = b[len(b):]
	}
	return l, nil
}
