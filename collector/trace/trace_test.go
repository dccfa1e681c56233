package trace_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeplex/kubeplex/collector/trace"
	"github.com/kubeplex/kubeplex/internal/wire"
)

func listen(t *testing.T) (*trace.Server, *atomic.Int64) {
	t.Helper()
	var got atomic.Int64
	s, err := trace.Listen(trace.Options{HTTPAddr: "127.0.0.1:0",
		Line: func(uint8, time.Time, []byte, []byte) { got.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(s.Close)
	return s, &got
}

func post(t *testing.T, url, ct string, body []byte) int {
	t.Helper()
	resp, err := http.Post(url, ct, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // only the status matters
	return resp.StatusCode
}

// TestTraceBodyAllOrNothing: a POST /trace body over the 4 MiB limit is refused whole
// (413, no line passed on: before, 349,525 of 500,000 lines and a cut-off fragment
// went into the stream although the answer was 413); one under it is taken whole.
func TestTraceBodyAllOrNothing(t *testing.T) {
	var text, batch strings.Builder
	for i := range 500000 {
		fmt.Fprintf(&text, "line %06d\n", i) // 12 bytes a line: 6 MB
	}
	var frames []byte
	for i := range 80000 { // 58 bytes a frame: 4.6 MB
		frames = wire.AppendFrame(frames, fmt.Appendf(nil, "<190>1 2026-11-25T10:00:00Z h app web.1 - - line %06d", i))
	}
	batch.Write(frames)
	tests := []struct {
		name, ct string
		body     []byte
		code     int
		lines    int64
	}{
		{"plain text over the limit", "text/plain", []byte(text.String()), http.StatusRequestEntityTooLarge, 0},
		{"plain text under it", "text/plain", []byte(text.String()[:12*300000]), http.StatusNoContent, 300000},
		{"logplex-1 over the limit", wire.ContentType, []byte(batch.String()), http.StatusRequestEntityTooLarge, 0},
		{"logplex-1 under it", wire.ContentType, frames[:58*40000], http.StatusNoContent, 40000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, got := listen(t)
			if code := post(t, "http://"+s.HTTPAddr()+"/trace", tt.ct, tt.body); code != tt.code {
				t.Fatalf("POST %d bytes = %d, want %d", len(tt.body), code, tt.code)
			}
			if n := got.Load(); n != tt.lines {
				t.Errorf("%d lines passed on, want %d", n, tt.lines)
			}
		})
	}
}
