package otlp

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/encoding"

	"github.com/kubeplex/kubeplex/router/message"
)

// benchRequest is a 1024-record request as the drain encodes it.
func benchRequest() []byte {
	msgs := make([]message.Msg, 0, 1024)
	for i := range 1024 {
		m := msg(fmt.Sprintf("line %d of the benchmark, a typical short log line with some words", i), "")
		m.ProcID = fmt.Appendf(nil, "web.%d", i%3+1)
		m.Time += int64(i)
		msgs = append(msgs, m)
	}
	pb, _ := newEncoder(encodeCfg).encode(nil, nil, batchOf(msgs...), time.Now())
	return pb
}

// TestGRPCGzip: gRPC's "gzip" is this package's compressor, and what it writes is
// gzip any reader takes, through pooled writers used again.
func TestGRPCGzip(t *testing.T) {
	c := encoding.GetCompressor("gzip")
	if _, ok := c.(*grpcGzip); !ok {
		t.Fatalf("gRPC's gzip is %T", c)
	}
	pb := benchRequest()
	for range 3 {
		var z bytes.Buffer
		w, err := c.Compress(&z)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pb); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		zb := bytes.Clone(z.Bytes())
		zr, err := stdgzip.NewReader(&z)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, pb) {
			t.Fatalf("round trip: %d bytes of %d, %v", len(got), len(pb), err)
		}
		r, err := c.Decompress(bytes.NewReader(zb))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pb) {
			t.Fatalf("Decompress: %d bytes of %d, %v", len(got), len(pb), err)
		}
	}
}

// BenchmarkGRPCGzip: compressing one 1024-record request as grpc-go's own gzip does
// (the standard library's at the default level) and as this package's does.
func BenchmarkGRPCGzip(b *testing.B) {
	pb := benchRequest()
	// grpc-go's gzip: the standard library's writer at the default level, reused (it
	// pools them too).
	var stdw *stdgzip.Writer
	std := func(w io.Writer) (io.WriteCloser, error) {
		if stdw == nil {
			stdw, _ = stdgzip.NewWriterLevel(w, stdgzip.DefaultCompression)
		} else {
			stdw.Reset(w)
		}
		return stdw, nil
	}
	for _, c := range []struct {
		name     string
		compress func(io.Writer) (io.WriteCloser, error)
	}{{"grpc-default", std}, {"klauspost-fastest", encoding.GetCompressor("gzip").Compress}} {
		b.Run(c.name, func(b *testing.B) {
			var z bytes.Buffer
			b.SetBytes(int64(len(pb)))
			b.ReportAllocs()
			for b.Loop() {
				z.Reset()
				w, _ := c.compress(&z)
				_, _ = w.Write(pb)
				_ = w.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1024), "ns/record")
			b.ReportMetric(float64(z.Len())/float64(len(pb))*100, "%size")
		})
	}
}
