package otlp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drain/syslog"
)

// exportMethod is LogsService/Export's full name.
const exportMethod = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

// grpcExporter calls LogsService/Export (OTLP/gRPC) with the encoder's bytes as the
// request (rawCodec), so no message tree is built.
type grpcExporter struct {
	conn    *grpc.ClientConn
	md      metadata.MD
	calls   []grpc.CallOption
	timeout time.Duration
	// copyBody: without compression gRPC may still hold the request's buffer when a
	// call ends early (deadline), so it gets a copy, not the pooled one.
	copyBody bool
}

// rawCodec sends a request that is already protobuf ([]byte as rawRequest) and reads
// answers with the protobuf codec. Named "proto", so the content type stays
// application/grpc+proto.
type rawCodec struct{}

type rawRequest []byte

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(rawRequest); ok {
		return mem.BufferSlice{mem.SliceBuffer(r)}, nil
	}
	return encoding.GetCodecV2(protoCodec).Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2(protoCodec).Unmarshal(data, v)
}

func (rawCodec) Name() string { return protoCodec }

const protoCodec = "proto"

// certWatch passes a TLS handshake on and announces a certificate failure (L14):
// gRPC reports a failed connection as a status whose error chain is lost.
type certWatch struct {
	credentials.TransportCredentials
	env drain.Env
	uri string
	l14 *drain.CertNotice
}

func (c *certWatch) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		c.l14.Failed(c.env, err, c.uri)
	} else {
		c.l14.Succeeded()
	}
	return conn, info, err
}

func (c *certWatch) Clone() credentials.TransportCredentials {
	return &certWatch{TransportCredentials: c.TransportCredentials.Clone(), env: c.env, uri: c.uri, l14: c.l14}
}

// GRPCTarget is the host:port an otlp+grpc(s) drain connects to (port 4317 for
// otlp+grpc, 443 for otlp+grpcs when the URL names none).
func GRPCTarget(cfg *drain.Config) string {
	port := cfg.URL.Port()
	if port == "" {
		port = "4317"
		if cfg.URL.Scheme == SchemeGRPCS {
			port = "443"
		}
	}
	return net.JoinHostPort(cfg.URL.Hostname(), port)
}

func newGRPCExporter(cfg *drain.Config, env drain.Env, o Options) (*grpcExporter, error) {
	creds := insecure.NewCredentials()
	if cfg.URL.Scheme == SchemeGRPCS {
		tc, err := syslog.TLSConfig(cfg, cfg.URL.Hostname())
		if err != nil {
			return nil, err
		}
		creds = &certWatch{TransportCredentials: credentials.NewTLS(tc), env: env,
			uri: cfg.URL.Scheme + "://" + GRPCTarget(cfg) + "/", l14: new(drain.CertNotice)}
	}
	dialer := *env.Dialer
	dialer.Timeout = o.ConnectTimeout
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return dialer.DialContext(ctx, "tcp", addr) }
	// passthrough: the address goes to the dialer as written, which resolves it and
	// applies the egress policy to each address; no proxy for the same reason.
	conn, err := grpc.NewClient("passthrough:///"+GRPCTarget(cfg),
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dial),
		grpc.WithNoProxy(),
		grpc.WithUserAgent(env.UserAgent),
		grpc.WithIdleTimeout(o.IdleTimeout),
		grpc.WithDisableServiceConfig(),
	)
	if err != nil {
		return nil, fmt.Errorf("grpc client: %w", err)
	}
	e := &grpcExporter{conn: conn, timeout: o.RequestTimeout, calls: []grpc.CallOption{grpc.ForceCodecV2(rawCodec{})},
		copyBody: cfg.Compression == routing.CompressionNone}
	if len(cfg.Headers) > 0 {
		e.md = metadata.MD{}
		for k, v := range cfg.Headers {
			e.md.Set(k, v)
		}
	}
	if cfg.Compression != routing.CompressionNone {
		e.calls = append(e.calls, grpc.UseCompressor(grpcGzipName))
	}
	return e, nil
}

func (e *grpcExporter) export(ctx context.Context, req *request) (*collogs.ExportLogsPartialSuccess, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	if e.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, e.md)
	}
	body := rawRequest(req.pb)
	if e.copyBody {
		body = rawRequest(bytes.Clone(req.pb))
	}
	resp := new(collogs.ExportLogsServiceResponse)
	err := e.conn.Invoke(ctx, exportMethod, body, resp, e.calls...)
	if err != nil {
		return nil, grpcError(err)
	}
	return resp.GetPartialSuccess(), nil
}

// grpcError classifies a failed call as the OTLP specification's "OTLP/gRPC
// Throttling" and "Failures" sections do: UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED,
// ABORTED, OUT_OF_RANGE and DATA_LOSS are retryable; RESOURCE_EXHAUSTED only when
// the server sent RetryInfo (it can recover); the rest are not. RetryInfo's delay is
// the least wait.
func grpcError(err error) error {
	st := status.Convert(err)
	ee := &exportError{err: fmt.Errorf("otlp drain answered %s: %s", st.Code(), clip(st.Message(), 200))}
	var delay time.Duration
	hasRetryInfo := false
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			hasRetryInfo = true
			if ri.GetRetryDelay() != nil {
				delay = ri.GetRetryDelay().AsDuration()
			}
		}
	}
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		ee.retryable = true
	case codes.ResourceExhausted:
		ee.retryable = hasRetryInfo
	}
	if ee.retryable {
		ee.wait = max(delay, 0)
	}
	return ee
}

func (e *grpcExporter) close() { _ = e.conn.Close() }
