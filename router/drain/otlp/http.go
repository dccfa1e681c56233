package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drain/syslog"
)

// LogsPath is where OTLP/HTTP receivers take logs when the URL names no path.
const LogsPath = "/v1/logs"

// maxResponse bounds how much of an answer is read.
const maxResponse = 64 << 10

// httpExporter POSTs binary protobuf (OTLP/HTTP, "application/x-protobuf").
type httpExporter struct {
	client    *http.Client
	transport *http.Transport
	url       string
	uri       string // the receiver without path, for the L14 notice
	header    http.Header
	gzip      bool
	env       drain.Env
	l14       drain.CertNotice
}

// EndpointURL is the URL an otlp+http(s) drain POSTs to: the scheme's transport,
// and /v1/logs when the URL has no path.
func EndpointURL(u *url.URL) string {
	e := *u
	e.User = nil
	e.Scheme = "http"
	if u.Scheme == SchemeHTTPS {
		e.Scheme = "https"
	}
	if e.Path == "" || e.Path == "/" {
		e.Path, e.RawPath = LogsPath, ""
	}
	if e.Port() == "" && e.Scheme == "http" {
		e.Host = net.JoinHostPort(e.Hostname(), "4318")
	}
	return e.String()
}

func newHTTPExporter(cfg *drain.Config, env drain.Env, o Options) (*httpExporter, error) {
	tc, err := syslog.TLSConfig(cfg, cfg.URL.Hostname())
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/x-protobuf")
	if env.UserAgent != "" {
		h.Set("User-Agent", env.UserAgent)
	}
	e := &httpExporter{
		url:    EndpointURL(cfg.URL),
		uri:    cfg.URL.Scheme + "://" + cfg.URL.Host + "/",
		header: h,
		gzip:   cfg.Compression != routing.CompressionNone,
		env:    env,
	}
	e.client, e.transport = drain.NewHTTPClient(env.Dialer, drain.HTTPOptions{TLS: tc, ConnectTimeout: o.ConnectTimeout,
		RequestTimeout: o.RequestTimeout, IdleTimeout: o.IdleTimeout, MaxIdle: o.MaxInFlight})
	if e.gzip {
		e.header.Set("Content-Encoding", "gzip")
	}
	return e, nil
}

func (e *httpExporter) export(ctx context.Context, req *request) (*collogs.ExportLogsPartialSuccess, error) {
	body := req.pb
	if e.gzip {
		// Compressed again on a retry: retries are rare, and the request is unchanged.
		req.z.Reset()
		if req.zw == nil {
			// The fastest level: a drain compresses every byte the app writes.
			req.zw, _ = gzip.NewWriterLevel(&req.z, gzip.BestSpeed)
		} else {
			req.zw.Reset(&req.z)
		}
		_, _ = req.zw.Write(body) // writes to a bytes.Buffer do not fail
		_ = req.zw.Close()
		body = req.z.Bytes()
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, &exportError{err: fmt.Errorf("build otlp request: %w", redact(err))}
	}
	hreq.Header = e.header.Clone()
	resp, err := e.client.Do(hreq)
	if err != nil {
		e.l14.Failed(e.env, err, e.uri)
		return nil, &exportError{err: fmt.Errorf("post to otlp drain: %w", redact(err)), retryable: true}
	}
	e.l14.Succeeded()
	defer func() { _ = resp.Body.Close() }()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return partialSuccess(resp.Header.Get("Content-Type"), answer), nil
	}
	return nil, httpError(resp, answer)
}

// partialSuccess reads an ExportLogsServiceResponse; an answer that is empty, JSON
// or unreadable counts as full success (the status code said so).
func partialSuccess(ctype string, answer []byte) *collogs.ExportLogsPartialSuccess {
	if len(answer) == 0 || !isProtobuf(ctype) {
		return nil
	}
	var r collogs.ExportLogsServiceResponse
	if proto.Unmarshal(answer, &r) != nil {
		return nil
	}
	return r.GetPartialSuccess()
}

func isProtobuf(ctype string) bool {
	return ctype == "" || strings.HasPrefix(ctype, "application/x-protobuf") || strings.HasPrefix(ctype, "application/protobuf")
}

// httpError classifies a non-2xx answer (OTLP/HTTP "Failures"): 429, 502, 503 and
// 504 are retryable, honouring Retry-After; everything else is not.
func httpError(resp *http.Response, answer []byte) error {
	msg := ""
	if isProtobuf(resp.Header.Get("Content-Type")) {
		var st status.Status
		if proto.Unmarshal(answer, &st) == nil && st.GetMessage() != "" {
			msg = ": " + clip(st.GetMessage(), 200)
		}
	}
	ee := &exportError{err: fmt.Errorf("otlp drain answered %d%s", resp.StatusCode, msg)}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		ee.retryable = true
		ee.wait = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return ee
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseUint(h, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact strips the URL from client errors: drain URLs may carry a path secret.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

func (e *httpExporter) close() { e.transport.CloseIdleConnections() }
