package otlp

import (
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers "gzip" before this package's init replaces it, whoever else imports it
)

// grpcGzip is gRPC's "gzip" message encoding done with klauspost's gzip at the
// fastest level, as the OTLP/HTTP drain compresses: grpc-go's own uses the standard
// library's at the default level, which costs a drain several times the CPU per
// byte (docs/drains.md, BenchmarkGRPCGzip). Writers are pooled across calls.
type grpcGzip struct {
	writers sync.Pool
}

// gRPC keeps compressors in a process-wide registry looked up by the name a call
// asks for (grpc.UseCompressor) or a peer sends (grpc-encoding); registering is only
// allowed at init time, hence the one init of this package.
func init() { encoding.RegisterCompressor(&grpcGzip{}) }

// grpcGzipName is the message encoding's name on the wire (grpc-encoding).
const grpcGzipName = "gzip"

func (*grpcGzip) Name() string { return grpcGzipName }

type pooledGzipWriter struct {
	*gzip.Writer
	pool *sync.Pool
}

func (w *pooledGzipWriter) Close() error {
	err := w.Writer.Close()
	w.pool.Put(w)
	return err
}

func (c *grpcGzip) Compress(w io.Writer) (io.WriteCloser, error) {
	if z, ok := c.writers.Get().(*pooledGzipWriter); ok {
		z.Reset(w)
		return z, nil
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	return &pooledGzipWriter{Writer: zw, pool: &c.writers}, nil
}

// Decompress reads an answer (small, and rarely compressed) or, in tests, a request.
func (*grpcGzip) Decompress(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }
