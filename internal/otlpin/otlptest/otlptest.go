// Package otlptest builds OTLP/HTTP logs requests for tests, with the generated OTLP
// types, and posts them: the collector's loopback endpoint and the router's ingest
// are tested with the same requests. Only tests import it, so the generated types
// stay out of the binaries (internal/otlpin decodes by hand).
package otlptest

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
)

// Str is a string AnyValue.
func Str(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

// KV is a string attribute.
func KV(k, v string) *commonpb.KeyValue { return &commonpb.KeyValue{Key: k, Value: Str(v)} }

// Post sends body to url as content type ct, gzipped when gz, after edit (nil: none)
// had its say on the request, and returns the answer with its body read.
func Post(t testing.TB, url, ct string, body []byte, gz bool, edit func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(body) // into memory
		_ = zw.Close()
		body = b.Bytes()
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close() // read to the end
	return resp, out
}
