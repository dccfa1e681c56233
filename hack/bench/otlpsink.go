package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"google.golang.org/protobuf/encoding/protowire"
)

// otlpSink is an OTLP/HTTP logs receiver: it counts the LogRecords of every export
// request by walking the protobuf (ExportLogsServiceRequest.resource_logs →
// ResourceLogs.scope_logs → ScopeLogs.log_records) without decoding the records, so
// the harness's share of the CPU stays small.
type otlpSink struct {
	counts sink
	srv    *http.Server
	Addr   string
}

func newOTLPSink() (*otlpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen otlp sink: %w", err)
	}
	s := &otlpSink{Addr: ln.Addr().String()}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("otlp sink:", err)
		}
	}()
	return s, nil
}

// sinkBuf is one request's scratch: the body and a gzip reader, reused so that the
// harness, which shares the CPUs with the router, spends its time on what any
// receiver must do (read, gunzip, walk), not on allocating.
type sinkBuf struct {
	body bytes.Buffer
	zr   *gzip.Reader
}

var sinkBufs = sync.Pool{New: func() any { return new(sinkBuf) }}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sb := sinkBufs.Get().(*sinkBuf)
	defer sinkBufs.Put(sb)
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		var err error
		if sb.zr == nil {
			sb.zr, err = gzip.NewReader(r.Body)
		} else {
			err = sb.zr.Reset(r.Body)
		}
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		body = sb.zr
	}
	sb.body.Reset()
	if _, err := sb.body.ReadFrom(body); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	n, ok := countRecords(sb.body.Bytes())
	if !ok {
		http.Error(w, "bad protobuf", http.StatusBadRequest)
		return
	}
	s.counts.count.Add(int64(n))
	s.counts.last.Store(time.Now().UnixNano())
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// countRecords counts field 2 of field 2 of field 1 (see otlpSink).
func countRecords(b []byte) (int, bool) {
	n := 0
	ok := eachField(b, 1, func(rl []byte) bool {
		return eachField(rl, 2, func(sl []byte) bool {
			return eachField(sl, 2, func([]byte) bool { n++; return true })
		})
	})
	return n, ok
}

// eachField calls fn with the bytes of every length-delimited field num of message b.
func eachField(b []byte, num protowire.Number, fn func([]byte) bool) bool {
	for len(b) > 0 {
		f, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return false
		}
		b = b[k:]
		if typ == protowire.BytesType && f == num {
			v, k := protowire.ConsumeBytes(b)
			if k < 0 || !fn(v) {
				return false
			}
			b = b[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(f, typ, b)
		if k < 0 {
			return false
		}
		b = b[k:]
	}
	return true
}

func (s *otlpSink) close() { _ = s.srv.Close() }
