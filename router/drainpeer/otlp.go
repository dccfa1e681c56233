package drainpeer

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	common "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // the receiver takes gzip calls, as the Collector's does
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kubeplex/kubeplex/internal/testenv"
)

// OTLPRecord is one LogRecord as a receiver got it, flattened.
type OTLPRecord struct {
	Resource       map[string]string
	Scope          string
	Time, Observed time.Time
	SeverityNumber int32
	SeverityText   string
	Body           string
	Attrs          map[string]string
	// TraceID and SpanID in hex; EventName, Flags and Dropped as sent.
	TraceID, SpanID string
	EventName       string
	Flags, Dropped  uint32
	ScopeVersion    string
}

// OTLPRequest is one export an OTLP receiver got (over HTTP or gRPC).
type OTLPRequest struct {
	// Header holds the HTTP headers, or the gRPC metadata (lower-case names).
	Header http.Header
	// Path is the HTTP request path ("" for gRPC).
	Path string
	// Gzip: the body (HTTP Content-Encoding, gRPC message encoding) was gzip.
	Gzip    bool
	Records []OTLPRecord
	// Shape lists the request's ResourceLogs, each as its ScopeLogs
	// ("[scope:records ...]"), space-separated.
	Shape string
	// Answer is what the receiver answered; Respond sets it.
	Answer OTLPAnswer
}

// OTLPAnswer is a receiver's answer. The zero value is success.
type OTLPAnswer struct {
	// HTTPStatus (0 = 200) and RetryAfter (seconds, "" = none) for OTLP/HTTP.
	HTTPStatus int
	RetryAfter string
	// Code (codes.OK = success) and, with RetryDelay > 0, a RetryInfo for OTLP/gRPC.
	Code       codes.Code
	RetryInfo  bool
	RetryDelay time.Duration
	// Rejected > 0 answers success with a partial success rejecting that many records.
	Rejected int64
}

func (a OTLPAnswer) ok() bool {
	return (a.HTTPStatus == 0 || (a.HTTPStatus >= 200 && a.HTTPStatus < 300)) && a.Code == codes.OK
}

// OTLPReceiver takes OTLP/HTTP (binary protobuf, gzip or not) on URL and OTLP/gRPC
// on GRPCAddr, and records every request. Respond chooses the answer to the n-th
// request (0-based, both protocols counted together); nil answers success.
type OTLPReceiver struct {
	HTTP     *httptest.Server
	URL      string
	GRPCAddr string
	Respond  func(n int, r *OTLPRequest) OTLPAnswer

	mu   sync.Mutex
	reqs []*OTLPRequest
}

// NewOTLPReceiver starts both servers on 127.0.0.1; with cert they serve TLS.
func NewOTLPReceiver(t testing.TB, cert *tls.Certificate, respond func(n int, r *OTLPRequest) OTLPAnswer) *OTLPReceiver {
	t.Helper()
	rv := &OTLPReceiver{Respond: respond}
	rv.HTTP = httptest.NewUnstartedServer(http.HandlerFunc(rv.serveHTTP))
	// Tests refuse certificates on purpose; a line per failed handshake is noise.
	rv.HTTP.Config.ErrorLog = log.New(io.Discard, "", 0)
	if cert != nil {
		rv.HTTP.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
		rv.HTTP.StartTLS()
	} else {
		rv.HTTP.Start()
	}
	rv.URL = rv.HTTP.URL
	t.Cleanup(rv.HTTP.Close)

	var opts []grpc.ServerOption
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
	}
	opts = append(opts, grpc.StatsHandler(encodingTagger{}))
	gs := grpc.NewServer(opts...)
	collogs.RegisterLogsServiceServer(gs, &otlpGRPC{rv: rv})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rv.GRPCAddr = ln.Addr().String()
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	return rv
}

func (rv *OTLPReceiver) record(r *OTLPRequest, req *collogs.ExportLogsServiceRequest) OTLPAnswer {
	r.Records = FlattenOTLP(req)
	r.Shape = shape(req)
	rv.mu.Lock()
	n := len(rv.reqs)
	rv.mu.Unlock()
	if rv.Respond != nil {
		r.Answer = rv.Respond(n, r)
	}
	rv.mu.Lock()
	rv.reqs = append(rv.reqs, r)
	rv.mu.Unlock()
	return r.Answer
}

func (rv *OTLPReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	r := &OTLPRequest{Header: req.Header.Clone(), Path: req.URL.Path, Gzip: req.Header.Get("Content-Encoding") == "gzip"}
	var body io.Reader = req.Body
	if r.Gzip {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var ex collogs.ExportLogsServiceRequest
	if err != nil || req.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, &ex) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a := rv.record(r, &ex)
	if a.RetryAfter != "" {
		w.Header().Set("Retry-After", a.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	if !a.ok() {
		st, _ := proto.Marshal(status.New(codes.Unavailable, "receiver says "+strconv.Itoa(a.HTTPStatus)).Proto())
		w.WriteHeader(a.HTTPStatus)
		_, _ = w.Write(st)
		return
	}
	resp, _ := proto.Marshal(response(a))
	_, _ = w.Write(resp)
}

func response(a OTLPAnswer) *collogs.ExportLogsServiceResponse {
	if a.Rejected == 0 {
		return &collogs.ExportLogsServiceResponse{}
	}
	return &collogs.ExportLogsServiceResponse{PartialSuccess: &collogs.ExportLogsPartialSuccess{
		RejectedLogRecords: a.Rejected, ErrorMessage: "rejected by the test"}}
}

type otlpGRPC struct {
	collogs.UnimplementedLogsServiceServer
	rv *OTLPReceiver
}

func (g *otlpGRPC) Export(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r := &OTLPRequest{Header: http.Header{}}
	for k, vs := range md {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	if enc, ok := ctx.Value(encodingKey{}).(*string); ok {
		r.Gzip = *enc == "gzip"
	}
	a := g.rv.record(r, req)
	if a.Code != codes.OK {
		st := status.New(a.Code, "receiver says "+a.Code.String())
		if a.RetryInfo {
			st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(a.RetryDelay)})
		}
		return nil, st.Err()
	}
	return response(a), nil
}

// encodingTagger notes each call's message encoding (grpc-encoding is not in the
// handler's metadata) where Export finds it.
type encodingTagger struct{}

type encodingKey struct{}

func (encodingTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, encodingKey{}, new(string))
}

func (encodingTagger) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok {
		if enc, ok := ctx.Value(encodingKey{}).(*string); ok {
			*enc = h.Compression
		}
	}
}

func (encodingTagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (encodingTagger) HandleConn(context.Context, stats.ConnStats)                       {}

func shape(req *collogs.ExportLogsServiceRequest) string {
	parts := make([]string, 0, len(req.GetResourceLogs()))
	for _, rl := range req.GetResourceLogs() {
		sc := make([]string, 0, len(rl.GetScopeLogs()))
		for _, sl := range rl.GetScopeLogs() {
			sc = append(sc, fmt.Sprintf("%s:%d", sl.GetScope().GetName(), len(sl.GetLogRecords())))
		}
		parts = append(parts, "["+strings.Join(sc, " ")+"]")
	}
	return strings.Join(parts, " ")
}

// FlattenOTLP lists the records of a request with their resource's attributes.
func FlattenOTLP(req *collogs.ExportLogsServiceRequest) []OTLPRecord {
	var out []OTLPRecord
	for _, rl := range req.GetResourceLogs() {
		res := attrs(rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			for _, lr := range sl.GetLogRecords() {
				out = append(out, OTLPRecord{Resource: res, Scope: sl.GetScope().GetName(),
					Time: time.Unix(0, int64(lr.GetTimeUnixNano())), Observed: time.Unix(0, int64(lr.GetObservedTimeUnixNano())),
					SeverityNumber: int32(lr.GetSeverityNumber()), SeverityText: lr.GetSeverityText(),
					Body: lr.GetBody().GetStringValue(), Attrs: attrs(lr.GetAttributes()),
					TraceID: hex.EncodeToString(lr.GetTraceId()), SpanID: hex.EncodeToString(lr.GetSpanId()), EventName: lr.GetEventName(),
					Flags: lr.GetFlags(), Dropped: lr.GetDroppedAttributesCount(), ScopeVersion: sl.GetScope().GetVersion()})
			}
		}
	}
	return out
}

func attrs(kvs []*common.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// Requests returns what was received so far.
func (rv *OTLPReceiver) Requests() []*OTLPRequest {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]*OTLPRequest(nil), rv.reqs...)
}

// Accepted returns the records of requests answered with success, in order, less
// none of a partial success (the test knows which it rejected).
func (rv *OTLPReceiver) Accepted() []OTLPRecord {
	var out []OTLPRecord
	for _, r := range rv.Requests() {
		if r.Answer.ok() {
			out = append(out, r.Records...)
		}
	}
	return out
}

// WaitAccepted waits until n records were accepted.
func (rv *OTLPReceiver) WaitAccepted(t testing.TB, n int) []OTLPRecord {
	t.Helper()
	var got []OTLPRecord
	testenv.Eventually(t, fmt.Sprintf("%d OTLP records", n), func() error {
		if got = rv.Accepted(); len(got) < n {
			return fmt.Errorf("got %d in %d requests", len(got), len(rv.Requests()))
		}
		return nil
	})
	return got
}
