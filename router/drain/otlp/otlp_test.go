package otlp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/kubeplex/kubeplex/internal/egress"
	"github.com/kubeplex/kubeplex/internal/routing"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/drain/otlp"
	"github.com/kubeplex/kubeplex/router/drainpeer"
	"github.com/kubeplex/kubeplex/router/message"
)

const token = "d.0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

type harness struct {
	runner *drain.Runner
	queue  *drain.Queue
	stats  *drain.Stats
	errs   atomic.Int64
	last   atomic.Value // string: last reported error

	mu        sync.Mutex
	announced []string // platform lines (L14)
}

func (h *harness) Announced() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.announced)
}

var loopback = egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func start(t *testing.T, d routing.Drain, opts otlp.Options) *harness {
	t.Helper()
	return startWith(t, d, opts, loopback)
}

func startWith(t *testing.T, d routing.Drain, opts otlp.Options, pol egress.Policy) *harness {
	t.Helper()
	u, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	d.ID, d.Token = "shop/d", token
	cfg := &drain.Config{Drain: d, App: "shop/web", URL: u}
	h := &harness{stats: &drain.Stats{}}
	h.queue = drain.NewQueue(1000, h.stats)
	env := drain.Env{
		Dialer: &drain.Dialer{Policy: pol},
		Logger: slog.New(slog.DiscardHandler),
		Report: func(err error) {
			h.errs.Add(1)
			h.last.Store(err.Error())
			h.stats.Fail(err, time.Now())
		},
		UserAgent: "kubeplex-router/test",
		Announce:  func(s string) { h.mu.Lock(); h.announced = append(h.announced, s); h.mu.Unlock() },
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	s, err := otlp.New(cfg, env, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.runner = drain.NewRunner(cfg, h.queue, h.stats, s, drain.RunnerOptions{Logger: env.Logger,
		PauseMin: time.Millisecond, PauseMax: 10 * time.Millisecond})
	t.Cleanup(func() {
		// No flush: a drain that refuses everything would hold the notice forever.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		h.runner.Stop(ctx, false)
	})
	return h
}

var at = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

// push offers lines "line <i>" with priority pri from web.<i%3+1>.
func (h *harness) push(from, n int, pri uint8) {
	recs := make([][]byte, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, message.AppendWireStrings(nil, pri, at.Add(time.Duration(i)*time.Microsecond), "app",
			fmt.Sprintf("web.%d", i%3+1), fmt.Sprint("line ", i)))
	}
	h.runner.Offer(recs)
}

// both runs a test against OTLP/HTTP and OTLP/gRPC.
func both(t *testing.T, f func(t *testing.T, grpc bool)) {
	t.Run("http", func(t *testing.T) { f(t, false) })
	t.Run("grpc", func(t *testing.T) { f(t, true) })
}

func drainURL(rv *drainpeer.OTLPReceiver, grpc, tls bool) string {
	switch {
	case grpc && tls:
		return "otlp+grpcs://" + rv.GRPCAddr
	case grpc:
		return "otlp+grpc://" + rv.GRPCAddr
	case tls:
		return "otlp+https://" + strings.TrimPrefix(rv.URL, "https://")
	}
	return "otlp+http://" + strings.TrimPrefix(rv.URL, "http://")
}

// TestRecordMapping: each message is one LogRecord with the app's resource, the
// drain token, severity from the syslog priority, source and process; headers
// arrive; gzip is on unless the drain says none; the path defaults to /v1/logs.
func TestRecordMapping(t *testing.T) {
	for _, compression := range []string{"", routing.CompressionNone} {
		both(t, func(t *testing.T, grpc bool) {
			rv := drainpeer.NewOTLPReceiver(t, nil, nil)
			h := start(t, routing.Drain{URL: drainURL(rv, grpc, false), Compression: compression,
				Headers: map[string]string{"x-api-key": "k-123", "authorization": "Bearer b-456"}}, otlp.Options{})
			pris := []uint8{wire.PriorityInfo, wire.PriorityError, 23*8 + 4, 23*8 + 7, 23*8 + 0}
			want := []struct {
				num  int32
				text string
			}{{9, "INFORMATIONAL"}, {17, "ERROR"}, {13, "WARNING"}, {5, "DEBUG"}, {21, "EMERGENCY"}}
			for i, p := range pris {
				h.push(i, 1, p)
			}
			got := rv.WaitAccepted(t, len(pris))
			for i, r := range got {
				wantRes := map[string]string{"service.name": "web", "k8s.namespace.name": "shop", "kubeplex.app": "shop/web",
					"kubeplex.drain.token": token}
				if fmt.Sprint(r.Resource) != fmt.Sprint(wantRes) {
					t.Errorf("record %d resource %v, want %v", i, r.Resource, wantRes)
				}
				wantAttrs := map[string]string{"kubeplex.source": "app", "kubeplex.process": fmt.Sprintf("web.%d", i%3+1)}
				if fmt.Sprint(r.Attrs) != fmt.Sprint(wantAttrs) {
					t.Errorf("record %d attributes %v, want %v", i, r.Attrs, wantAttrs)
				}
				if r.Body != fmt.Sprint("line ", i) || !r.Time.Equal(at.Add(time.Duration(i)*time.Microsecond)) ||
					r.SeverityNumber != want[i].num || r.SeverityText != want[i].text || r.Scope != otlp.ScopeName || r.Observed.IsZero() {
					t.Errorf("record %d = %+v", i, r)
				}
			}
			for _, req := range rv.Requests() {
				if req.Gzip != (compression == "") {
					t.Errorf("gzip %v with compression %q", req.Gzip, compression)
				}
				if req.Header.Get("X-Api-Key") != "k-123" || req.Header.Get("Authorization") != "Bearer b-456" {
					t.Errorf("headers %v", req.Header)
				}
				if !strings.HasPrefix(req.Header.Get("User-Agent"), "kubeplex-router/test") {
					t.Errorf("user agent %q", req.Header.Get("User-Agent"))
				}
				if !grpc && req.Path != "/v1/logs" {
					t.Errorf("path %q", req.Path)
				}
			}
			testenv.Until(t, "delivered counted", func() bool { return h.stats.Delivered.Load() == int64(len(pris)) })
		})
	}
}

func TestHTTPPathKept(t *testing.T) {
	rv := drainpeer.NewOTLPReceiver(t, nil, nil)
	h := start(t, routing.Drain{URL: drainURL(rv, false, false) + "/tenant/7/logs?x=1"}, otlp.Options{})
	h.push(0, 2, wire.PriorityInfo)
	rv.WaitAccepted(t, 2)
	if p := rv.Requests()[0].Path; p != "/tenant/7/logs" {
		t.Errorf("path %q", p)
	}
}

// TestRetryable: the answers the OTLP specification calls retryable are retried
// (the same records, then success); Retry-After and RetryInfo are honoured.
func TestRetryable(t *testing.T) {
	tests := []struct {
		name    string
		grpc    bool
		answers []drainpeer.OTLPAnswer
	}{
		{"http 503 retry-after", false, []drainpeer.OTLPAnswer{{HTTPStatus: 503, RetryAfter: "0"}, {HTTPStatus: 429}}},
		{"http 502 504", false, []drainpeer.OTLPAnswer{{HTTPStatus: 502}, {HTTPStatus: 504}}},
		{"grpc unavailable", true, []drainpeer.OTLPAnswer{{Code: codes.Unavailable}, {Code: codes.Unavailable}}},
		{"grpc resource exhausted with retry info", true, []drainpeer.OTLPAnswer{{Code: codes.ResourceExhausted, RetryInfo: true, RetryDelay: time.Millisecond}}},
		{"grpc aborted", true, []drainpeer.OTLPAnswer{{Code: codes.Aborted}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rv := drainpeer.NewOTLPReceiver(t, nil, func(n int, _ *drainpeer.OTLPRequest) drainpeer.OTLPAnswer {
				if n < len(tt.answers) {
					return tt.answers[n]
				}
				return drainpeer.OTLPAnswer{}
			})
			h := start(t, routing.Drain{URL: drainURL(rv, tt.grpc, false)}, otlp.Options{})
			h.push(0, 4, wire.PriorityInfo)
			got := rv.WaitAccepted(t, 4)
			reqs := rv.Requests()
			if len(reqs) != len(tt.answers)+1 {
				t.Fatalf("%d requests, want %d", len(reqs), len(tt.answers)+1)
			}
			for i, r := range reqs {
				if len(r.Records) != 4 || r.Records[0].Body != "line 0" {
					t.Errorf("attempt %d carried %d records", i, len(r.Records))
				}
			}
			if len(got) != 4 {
				t.Errorf("accepted %d", len(got))
			}
			testenv.Until(t, "accounting", func() bool { return h.stats.Delivered.Load() == 4 })
			if h.stats.Dropped.Load() != 0 || h.errs.Load() != int64(len(tt.answers)) {
				t.Errorf("dropped %d, reported %d errors", h.stats.Dropped.Load(), h.errs.Load())
			}
		})
	}
}

// TestNotRetryable: other answers drop the batch at once; it is counted and the next
// delivered request starts with the L10 notice as a LogRecord.
func TestNotRetryable(t *testing.T) {
	tests := []struct {
		name   string
		grpc   bool
		answer drainpeer.OTLPAnswer
		err    string
	}{
		{"http 400", false, drainpeer.OTLPAnswer{HTTPStatus: 400}, "otlp drain answered 400: receiver says 400"},
		{"http 401", false, drainpeer.OTLPAnswer{HTTPStatus: 401}, "answered 401"},
		{"http 500", false, drainpeer.OTLPAnswer{HTTPStatus: 500}, "answered 500"},
		{"grpc invalid argument", true, drainpeer.OTLPAnswer{Code: codes.InvalidArgument}, "answered InvalidArgument"},
		{"grpc unauthenticated", true, drainpeer.OTLPAnswer{Code: codes.Unauthenticated}, "answered Unauthenticated"},
		{"grpc resource exhausted without retry info", true, drainpeer.OTLPAnswer{Code: codes.ResourceExhausted}, "answered ResourceExhausted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rv := drainpeer.NewOTLPReceiver(t, nil, func(n int, _ *drainpeer.OTLPRequest) drainpeer.OTLPAnswer {
				if n == 0 {
					return tt.answer
				}
				return drainpeer.OTLPAnswer{}
			})
			h := start(t, routing.Drain{URL: drainURL(rv, tt.grpc, false)}, otlp.Options{})
			h.push(0, 3, wire.PriorityInfo)
			testenv.Until(t, "batch dropped", func() bool { return h.stats.Dropped.Load() == 3 })
			if last, _ := h.last.Load().(string); !strings.Contains(last, tt.err) {
				t.Errorf("reported %q, want %q", last, tt.err)
			}
			// The notice goes out on its own as soon as the drain pauses no more.
			l10 := rv.WaitAccepted(t, 1)[0]
			h.push(3, 2, wire.PriorityInfo)
			got := rv.WaitAccepted(t, 3)
			for i, r := range rv.Requests()[1:] {
				for _, rec := range r.Records {
					if rec.Body == "line 0" {
						t.Errorf("request %d repeats the refused batch", i+1)
					}
				}
			}
			if !strings.HasPrefix(l10.Body, "Error L10 (output buffer overflow): 3 messages dropped since ") ||
				l10.Attrs["kubeplex.source"] != "kubeplex" || l10.Attrs["kubeplex.process"] != "router" || l10.SeverityText != "ERROR" {
				t.Errorf("first record %+v, want the L10 notice", l10)
			}
			if got[1].Body != "line 3" || got[2].Body != "line 4" {
				t.Errorf("records after the notice: %q %q", got[1].Body, got[2].Body)
			}
			testenv.Until(t, "accounting", func() bool { return h.stats.Delivered.Load() == 2 && h.stats.Announced.Load() == 3 })
		})
	}
}

// TestPartialSuccess: records a receiver rejects are dropped and announced.
func TestPartialSuccess(t *testing.T) {
	both(t, func(t *testing.T, grpc bool) {
		rv := drainpeer.NewOTLPReceiver(t, nil, func(n int, _ *drainpeer.OTLPRequest) drainpeer.OTLPAnswer {
			if n == 0 {
				return drainpeer.OTLPAnswer{Rejected: 2}
			}
			return drainpeer.OTLPAnswer{}
		})
		h := start(t, routing.Drain{URL: drainURL(rv, grpc, false)}, otlp.Options{})
		h.push(0, 5, wire.PriorityInfo)
		testenv.Until(t, "rejected records counted", func() bool {
			return h.stats.Delivered.Load() == 3 && h.stats.Dropped.Load() == 2
		})
		if last, _ := h.last.Load().(string); !strings.Contains(last, "rejected 2 of 5 log records: rejected by the test") {
			t.Errorf("reported %q", last)
		}
		testenv.Until(t, "notice", func() bool { return len(rv.Requests()) == 2 })
		second := rv.Requests()[1].Records
		if len(second) != 1 || !strings.HasPrefix(second[0].Body, "Error L10 (output buffer overflow): 2 messages dropped") {
			t.Errorf("second request %+v", second)
		}
		testenv.Until(t, "announced", func() bool { return h.stats.Announced.Load() == 2 })
	})
}

// TestTLS: otlp+https and otlp+grpcs verify against the drain's CA; another CA fails
// and puts one L14 notice in the app's stream per failure streak, naming the receiver
// without its path.
func TestTLS(t *testing.T) {
	both(t, func(t *testing.T, grpc bool) {
		ca := testenv.NewCA(t)
		cert := ca.Server(t, "otel.test")
		rv := drainpeer.NewOTLPReceiver(t, &cert, nil)
		h := start(t, routing.Drain{URL: drainURL(rv, grpc, true), TLS: &routing.TLS{CAPEM: string(ca.PEM)}}, otlp.Options{})
		h.push(0, 2, wire.PriorityInfo)
		rv.WaitAccepted(t, 2)

		other := testenv.NewCA(t)
		u := drainURL(rv, grpc, true)
		if !grpc {
			u += "/secret/v1/logs"
		}
		bad := start(t, routing.Drain{URL: u, TLS: &routing.TLS{CAPEM: string(other.PEM)}}, otlp.Options{RequestOptions: drain.RequestOptions{Attempts: 2}})
		bad.push(0, 2, wire.PriorityInfo)
		testenv.Until(t, "refused certificate counted", func() bool { return bad.stats.Dropped.Load() == 2 })
		bad.push(2, 2, wire.PriorityInfo)
		testenv.Until(t, "second batch refused", func() bool { return bad.stats.Dropped.Load() == 4 && bad.errs.Load() >= 4 })
		if last, _ := bad.last.Load().(string); !strings.Contains(last, "certificate") {
			t.Errorf("reported %q, want a certificate error", last)
		}
		host := strings.TrimPrefix(strings.TrimPrefix(drainURL(rv, grpc, true), "otlp+https://"), "otlp+grpcs://")
		scheme := "otlp+https"
		if grpc {
			scheme = "otlp+grpcs"
		}
		a := bad.Announced()
		if len(a) != 1 || !strings.HasPrefix(a[0], "Error L14 (certificate validation): error=") ||
			!strings.Contains(a[0], "certificate signed by unknown authority") || !strings.HasSuffix(a[0], ` uri="`+scheme+"://"+host+`/"`) {
			t.Errorf("announced %q", a)
		}
		if n := len(h.Announced()); n != 0 {
			t.Errorf("the verified drain announced %d lines", n)
		}
		if len(rv.Requests()) != 1 {
			t.Errorf("%d requests reached the receiver", len(rv.Requests()))
		}
	})
}

// TestEgressAtDial: connections go through the router's Dialer, so an address the
// policy refuses is never connected to.
func TestEgressAtDial(t *testing.T) {
	both(t, func(t *testing.T, grpc bool) {
		rv := drainpeer.NewOTLPReceiver(t, nil, nil)
		h := startWith(t, routing.Drain{URL: drainURL(rv, grpc, false)}, otlp.Options{RequestOptions: drain.RequestOptions{Attempts: 1}}, egress.Policy{})
		h.push(0, 1, wire.PriorityInfo)
		testenv.Until(t, "refused", func() bool { return h.stats.Dropped.Load() == 1 })
		if last, _ := h.last.Load().(string); !strings.Contains(last, "host 127.0.0.1 is in 127.0.0.0/8, loopback") {
			t.Errorf("reported %q", last)
		}
		if len(rv.Requests()) != 0 {
			t.Errorf("%d requests reached a refused address", len(rv.Requests()))
		}
	})
}

func TestSeverity(t *testing.T) {
	for pri, want := range map[uint8]string{0: "EMERGENCY", 1: "ALERT", 2: "CRITICAL", 3: "ERROR", 4: "WARNING", 5: "NOTICE", 6: "INFORMATIONAL", 7: "DEBUG", 190: "INFORMATIONAL", 187: "ERROR"} {
		if _, text := otlp.Severity(pri); text != want {
			t.Errorf("Severity(%d) = %s, want %s", pri, text, want)
		}
	}
}

// TestStructuredData: attributes a message brought from OTLP input (STRUCTURED-DATA,
// docs/drains.md) become the record's fields, record attributes and resource
// attributes; kubeplex's own attributes win on a clash; runs of records with the
// same resource and scope share a ResourceLogs and a ScopeLogs.
func TestStructuredData(t *testing.T) {
	rv := drainpeer.NewOTLPReceiver(t, nil, nil)
	h := start(t, routing.Drain{URL: drainURL(rv, false, false)}, otlp.Options{})
	sdk := `[otel@32473 trace_id="4bf92f3577b34da6a3ce929d0e0e4736" span_id="00f067aa0ba902b7" flags="1" severity_text="WARN" event_name="payment.declined" scope.name="checkout" scope.version="1.2" dropped_attributes_count="2"]` +
		`[log@32473 user.id="42" note="a \"quoted\\] value" kubeplex.source="forged"]` +
		`[res@32473 service.name="checkout-api" telemetry.sdk.language="go" kubeplex.drain.token="forged"]`
	msgs := []message.Msg{
		{Priority: 23*8 + 4, Time: at.UnixMicro(), Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("declined"), Attrs: []byte(sdk)},
		{Priority: 23*8 + 4, Time: at.UnixMicro() + 1, Source: []byte("app"), ProcID: []byte("web.1"), Text: []byte("declined again"), Attrs: []byte(sdk)},
		{Priority: wire.PriorityInfo, Time: at.UnixMicro() + 2, Source: []byte("app"), ProcID: []byte("web.2"), Text: []byte("plain")},
		{Priority: wire.PriorityInfo, Time: at.UnixMicro() + 3, Source: []byte("app"), ProcID: []byte("web.2"), Text: []byte("syslog sd"),
			Attrs: []byte(`[exampleSDID@32473 iut="3" eventSource="Application"]`)},
	}
	recs := make([][]byte, 0, len(msgs))
	for i := range msgs {
		recs = append(recs, message.AppendWire(nil, &msgs[i]))
	}
	h.runner.Offer(recs)
	got := rv.WaitAccepted(t, len(msgs))
	sd := got[0]
	if sd.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || sd.SpanID != "00f067aa0ba902b7" || sd.Flags != 1 || sd.SeverityText != "WARN" ||
		sd.SeverityNumber != 13 || sd.EventName != "payment.declined" || sd.Scope != "checkout" || sd.ScopeVersion != "1.2" || sd.Dropped != 2 {
		t.Errorf("record fields %+v", sd)
	}
	wantAttrs := map[string]string{"user.id": "42", "note": `a "quoted\] value`, "kubeplex.source": "app", "kubeplex.process": "web.1"}
	if fmt.Sprint(sd.Attrs) != fmt.Sprint(wantAttrs) {
		t.Errorf("attributes %v, want %v", sd.Attrs, wantAttrs)
	}
	wantRes := map[string]string{"service.name": "web", "k8s.namespace.name": "shop", "kubeplex.app": "shop/web",
		"kubeplex.drain.token": token, "telemetry.sdk.language": "go"}
	if fmt.Sprint(sd.Resource) != fmt.Sprint(wantRes) {
		t.Errorf("resource %v, want %v", sd.Resource, wantRes)
	}
	if got[2].Scope != otlp.ScopeName || got[2].TraceID != "" || len(got[2].Resource) != 4 || got[2].SeverityText != "INFORMATIONAL" {
		t.Errorf("plain record after an SDK one %+v", got[2])
	}
	if got[3].Attrs["exampleSDID@32473.iut"] != "3" || got[3].Attrs["exampleSDID@32473.eventSource"] != "Application" {
		t.Errorf("other structured data %v", got[3].Attrs)
	}
	if n := len(rv.Requests()); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

// TestEncoderGroups checks the request's shape: consecutive records with the same
// resource and scope share one ResourceLogs and one ScopeLogs.
func TestEncoderGroups(t *testing.T) {
	rv := drainpeer.NewOTLPReceiver(t, nil, nil)
	h := start(t, routing.Drain{URL: drainURL(rv, true, false)}, otlp.Options{})
	a := `[otel@32473 scope.name="a"][res@32473 service.name="x"]`
	b := `[otel@32473 scope.name="b"][res@32473 service.name="x"]`
	c := `[res@32473 host.name="y"]`
	sds := []string{a, a, b, "", "", c, c}
	recs := make([][]byte, 0, len(sds))
	for i, sd := range sds {
		m := message.Msg{Priority: wire.PriorityInfo, Time: at.UnixMicro(), Source: []byte("app"), ProcID: []byte("web.1"),
			Text: fmt.Appendf(nil, "r%d", i), Attrs: []byte(sd)}
		recs = append(recs, message.AppendWire(nil, &m))
	}
	h.runner.Offer(recs)
	rv.WaitAccepted(t, len(recs))
	shape := rv.Requests()[0].Shape
	// resources: {x: scopes a(2), b(1)}, {kubeplex only: router scope(2)}, {y: router scope(2)}
	if shape != "[a:2 b:1] [kubeplex.io/router:2] [kubeplex.io/router:2]" {
		t.Errorf("shape %q", shape)
	}
}
