package wire

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func frames(records ...string) []byte {
	var b []byte
	for _, r := range records {
		b = AppendFrame(b, []byte(r))
	}
	return b
}

const (
	recA = "<190>1 2026-11-25T10:00:00.000001+00:00 shuttle myapp shuttle - - first"
	recB = "<190>1 2026-11-25T10:00:00.000002+00:00 shuttle myapp shuttle - - second"
)

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

func TestReadBatch(t *testing.T) {
	tests := []struct {
		name       string
		body       []byte
		headers    map[string]string
		chunked    bool
		maxBody    int
		wantCount  int
		wantFrame  string
		wantReason string
	}{
		{name: "plain batch", body: frames(recA, recB), headers: map[string]string{HeaderMsgCount: "2", HeaderFrameID: "f1"}, wantCount: 2, wantFrame: "f1"},
		{name: "log-shuttle: chunked, no frame id, request id", body: frames(recA), chunked: true,
			headers: map[string]string{HeaderMsgCount: "1", HeaderRequestID: "req-9", "User-Agent": "log-shuttle/0.20"}, wantCount: 1, wantFrame: "req-9"},
		{name: "gzip body", body: gz(frames(recA, recB)), headers: map[string]string{"Content-Encoding": "gzip"}, wantCount: 2},
		{name: "legacy content type", body: frames(recA), headers: map[string]string{"Content-Type": ContentTypeLegacy}, wantCount: 1},
		{name: "no count header", body: frames(recA, recB, recA), wantCount: 3},
		{name: "count mismatch", body: frames(recA), headers: map[string]string{HeaderMsgCount: "2"}, wantReason: ReasonCount},
		{name: "count not a number", body: frames(recA), headers: map[string]string{HeaderMsgCount: "one"}, wantReason: ReasonCount},
		{name: "bad framing", body: []byte("12 short"), wantReason: ReasonMalformed},
		{name: "frame is not syslog", body: frames("hello world"), wantReason: ReasonMalformed},
		{name: "bad gzip", body: []byte("not gzip"), headers: map[string]string{"Content-Encoding": "gzip"}, wantReason: ReasonMalformed},
		{name: "unknown encoding", body: frames(recA), headers: map[string]string{"Content-Encoding": "br"}, wantReason: ReasonEncoding},
		{name: "wrong content type", body: frames(recA), headers: map[string]string{"Content-Type": "application/json"}, wantReason: ReasonContentType},
		{name: "body over limit", body: frames(recA, recB), maxBody: 50, wantReason: ReasonTooLarge},
		{name: "gzip bomb stops at limit", body: gz(bytes.Repeat([]byte("9"), 1<<20)), maxBody: 1000,
			headers: map[string]string{"Content-Encoding": "gzip"}, wantReason: ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: net/http sends it chunked
			}
			req := httptest.NewRequest(http.MethodPost, "/logs", body)
			req.Header.Set("Content-Type", ContentType)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			b, err := ReadBatch(req, tt.maxBody, 0, nil)
			if tt.wantReason != "" {
				var be *BatchError
				if !errors.As(err, &be) || be.Reason != tt.wantReason {
					t.Fatalf("err = %v, want reason %q", err, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Records) != tt.wantCount || b.FrameID != tt.wantFrame {
				t.Fatalf("got %d records, frame %q; want %d, %q", len(b.Records), b.FrameID, tt.wantCount, tt.wantFrame)
			}
			if string(b.Records[0]) != recA {
				t.Fatalf("first record %q", b.Records[0])
			}
		})
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   string
		ok     bool
	}{
		{name: "basic, log-shuttle style", header: "Basic dG9rZW46dC5hYmM=", want: "t.abc", ok: true}, // token:t.abc
		{name: "bearer", header: "Bearer t.xyz", want: "t.xyz", ok: true},
		{name: "bearer lower case", header: "bearer t.xyz", want: "t.xyz", ok: true},
		{name: "basic with empty password", header: "Basic dG9rZW46", ok: false}, // token:
		{name: "none", header: "", ok: false},
		{name: "empty bearer", header: "Bearer  ", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/logs", nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			got, ok := RequestToken(req)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %q %v, want %q %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestBatchRequestRoundTrip sends a batch over a real HTTP connection and decodes it
// on the other side with ReadBatch, with and without gzip.
func TestBatchRequestRoundTrip(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run("gzip="+strconv.FormatBool(compress), func(t *testing.T) {
			type seen struct {
				batch *Batch
				token string
				hdr   http.Header
			}
			got := make(chan seen, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := ReadBatch(r, 0, 0, nil)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				_, pass, _ := r.BasicAuth()
				got <- seen{b, pass, r.Header.Clone()}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			br := BatchRequest{URL: srv.URL + "/logs", Body: frames(recA, recB), Count: 2, FrameID: "fid",
				DrainToken: "d.123", UserAgent: "kubeplex-test", Username: "u", Password: "p", Gzip: compress}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := br.NewRequest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close() // the status is the answer; the body is empty
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d", resp.StatusCode)
			}
			s := <-got
			if len(s.batch.Records) != 2 || s.batch.FrameID != "fid" || s.token != "p" ||
				s.hdr.Get(HeaderDrainToken) != "d.123" || s.hdr.Get("User-Agent") != "kubeplex-test" {
				t.Fatalf("unexpected batch %+v headers %v", s.batch, s.hdr)
			}
			if !strings.Contains(string(s.batch.Records[1]), "second") {
				t.Fatalf("second record %q", s.batch.Records[1])
			}
		})
	}
}

// FuzzReadBatch feeds arbitrary bodies and count headers: ReadBatch must never panic
// and must either return exactly the framed records or a BatchError.
func FuzzReadBatch(f *testing.F) {
	f.Add(frames(recA, recB), "2", false)
	f.Add([]byte("3 abc"), "", false)
	f.Add(gz(frames(recA)), "1", true)
	f.Fuzz(func(t *testing.T, body []byte, count string, gzipped bool) {
		req := httptest.NewRequest(http.MethodPost, "/logs", bytes.NewReader(body))
		req.Header.Set("Content-Type", ContentType)
		if count != "" {
			req.Header.Set(HeaderMsgCount, count)
		}
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		b, err := ReadBatch(req, 1<<16, 0, nil)
		if err != nil {
			var be *BatchError
			if !errors.As(err, &be) {
				t.Fatalf("error is not a BatchError: %v", err)
			}
			return
		}
		for _, r := range b.Records {
			if _, err := Scan(r); err != nil {
				t.Fatalf("accepted an invalid record %q", r)
			}
		}
	})
}
