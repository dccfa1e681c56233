package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// httpSink is a logplex-1 drain receiver: it counts the frames of every POST (the
// octet counts, like the syslog sink, not the Logplex-Msg-Count header, so a wrong
// header cannot hide a loss), keeps each batch's size and how many requests were in
// flight at once, and can answer slowly, like a receiver under load.
type httpSink struct {
	counts   sink // count and last, read by waitCount
	srv      *http.Server
	URL      string
	slow     time.Duration
	inFlight atomic.Int64
	maxIn    atomic.Int64
	mu       sync.Mutex
	batches  []int
	bytes    int64
}

func newHTTPSink(slow time.Duration) (*httpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen http sink: %w", err)
	}
	h := &httpSink{slow: slow, URL: "http://" + ln.Addr().String() + "/logs"}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("http sink:", err)
		}
	}()
	return h, nil
}

func (h *httpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxIn.Load()
		if n <= m || h.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	buf := make([]byte, 64<<10)
	var f frameScanner
	frames, size := 0, 0
	for {
		k, err := r.Body.Read(buf)
		frames += f.scan(buf[:k], false)
		size += k
		if err != nil {
			break
		}
	}
	if h.slow > 0 {
		time.Sleep(h.slow)
	}
	h.mu.Lock()
	h.batches = append(h.batches, frames)
	h.bytes += int64(size)
	h.mu.Unlock()
	h.counts.count.Add(int64(frames))
	h.counts.last.Store(time.Now().UnixNano())
	w.WriteHeader(http.StatusOK)
}

// batchStats returns the number of requests, their mean and largest frame counts,
// and the mean body size.
func (h *httpSink) batchStats() (n int, mean float64, largest int, meanBytes float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.batches) == 0 {
		return 0, 0, 0, 0
	}
	sum := 0
	for _, b := range h.batches {
		sum += b
	}
	return len(h.batches), float64(sum) / float64(len(h.batches)), slices.Max(h.batches),
		float64(h.bytes) / float64(len(h.batches))
}

func (h *httpSink) close() { _ = h.srv.Close() }
