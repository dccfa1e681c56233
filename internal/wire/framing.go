package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// DefaultMaxFrame is the largest frame accepted by default: a 10,000-byte line (the
// Logplex split size) plus a generous header.
const DefaultMaxFrame = 16 * 1024

var (
	// ErrFrameTooLarge is wrapped when a frame's declared length exceeds the limit.
	// The reader refuses before reading or allocating the frame.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrMalformedFrame is wrapped when the framing itself is broken.
	ErrMalformedFrame = errors.New("malformed frame")
)

// AppendFrame appends record with RFC 6587 octet-counting framing: "<len> <record>".
func AppendFrame(dst, record []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(record)), 10)
	dst = append(dst, ' ')
	return append(dst, record...)
}

// FrameReader reads RFC 6587 frames from a stream. Octet counting is always accepted;
// with AllowNewline, a frame starting with '<' is read as non-transparent framing
// (terminated by LF), which is what syslog senders such as rsyslog's omfwd default to.
type FrameReader struct {
	br  *bufio.Reader
	max int
	buf []byte
	// AllowNewline accepts LF-terminated frames beside octet-counted ones.
	AllowNewline bool
}

// NewFrameReader returns a reader of frames of at most maxFrame bytes
// (DefaultMaxFrame when maxFrame <= 0).
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	size := 64 * 1024
	if maxFrame+16 > size {
		size = maxFrame + 16
	}
	return &FrameReader{br: bufio.NewReaderSize(r, size), max: maxFrame}
}

// Next returns the next record. The slice is valid until the next call. At a clean end
// of stream it returns io.EOF; a stream cut inside a frame is io.ErrUnexpectedEOF.
// After any other error the stream position is undefined and the caller must stop.
func (fr *FrameReader) Next() ([]byte, error) {
	first, err := fr.br.ReadByte()
	if err != nil {
		return nil, err // io.EOF between frames is a clean end
	}
	// Tolerate stray LFs between frames; some senders end octet-counted frames with one.
	for first == '\n' || first == '\r' {
		if first, err = fr.br.ReadByte(); err != nil {
			return nil, err
		}
	}
	if first == '<' && fr.AllowNewline {
		return fr.nextLine()
	}
	if first < '1' || first > '9' {
		return nil, fmt.Errorf("%w: expected a length, got %q", ErrMalformedFrame, first)
	}
	n := int(first - '0')
	for digits := 1; ; digits++ {
		c, err := fr.br.ReadByte()
		if err != nil {
			return nil, unexpected(err)
		}
		if c == ' ' {
			break
		}
		if c < '0' || c > '9' || digits >= 9 {
			return nil, fmt.Errorf("%w: bad length", ErrMalformedFrame)
		}
		n = n*10 + int(c-'0')
		if n > fr.max {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrFrameTooLarge, fr.max)
		}
	}
	if n > fr.max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, fr.max)
	}
	// Peek returns a view into the reader's buffer, which is larger than max: no copy.
	b, err := fr.br.Peek(n)
	if err != nil {
		return nil, unexpected(err)
	}
	_, _ = fr.br.Discard(n)
	return b, nil
}

func (fr *FrameReader) nextLine() ([]byte, error) {
	fr.buf = append(fr.buf[:0], '<')
	for {
		chunk, err := fr.br.ReadSlice('\n')
		if len(fr.buf)+len(chunk) > fr.max+1 {
			return nil, fmt.Errorf("%w: line over %d bytes", ErrFrameTooLarge, fr.max)
		}
		fr.buf = append(fr.buf, chunk...)
		switch {
		case err == nil:
			line := fr.buf[:len(fr.buf)-1]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			// A last line without LF is still a line (the sender closed after it).
			return fr.buf, nil
		default:
			return nil, err
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// SplitFrames calls fn for each octet-counted frame of body, in order. The slices are
// views into body. It is the in-memory twin of FrameReader for HTTP bodies.
func SplitFrames(body []byte, maxFrame int, fn func(record []byte) error) (int, error) {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	count := 0
	for i := 0; i < len(body); {
		if c := body[i]; c == '\n' || c == '\r' {
			i++
			continue
		}
		n, j := 0, i
		for j < len(body) && body[j] >= '0' && body[j] <= '9' && j-i < 9 {
			n = n*10 + int(body[j]-'0')
			j++
		}
		if j == i || j >= len(body) || body[j] != ' ' || body[i] == '0' {
			return count, fmt.Errorf("%w: bad length at byte %d", ErrMalformedFrame, i)
		}
		if n > maxFrame {
			return count, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxFrame)
		}
		j++
		if len(body)-j < n {
			return count, fmt.Errorf("%w: frame cut short at byte %d", ErrMalformedFrame, i)
		}
		if err := fn(body[j : j+n]); err != nil {
			return count, err
		}
		count++
		i = j + n
	}
	return count, nil
}
