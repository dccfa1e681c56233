package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
)

// Bounds on an OTLP drain's headers: enough for an API key and a tenant id, and far
// below what receivers accept (gRPC's default metadata limit is 8 KiB).
const (
	maxOTLPHeaders     = 32
	maxOTLPHeaderBytes = 8 << 10
)

// reservedOTLPHeaders are set by the drain itself (or by HTTP and gRPC) and cannot
// come from a Secret.
var reservedOTLPHeaders = []string{
	"connection", "content-encoding", "content-length", "content-type", "host", "keep-alive",
	"proxy-authorization", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
}

func isOTLP(scheme string) bool { return strings.HasPrefix(scheme, "otlp+") }

func isOTLPGRPC(scheme string) bool { return scheme == "otlp+grpc" || scheme == "otlp+grpcs" }

// resolveOTLP fills an OTLP drain's compression and headers. Header values are
// credentials (API keys, bearer tokens): errors name the Secret and key, never a value.
func (r *LogDrainReconciler) resolveOTLP(ctx context.Context, d *kubeplexv1alpha1.LogDrain, acc *routes.AcceptedDrain) error {
	scheme, _, _ := strings.Cut(acc.URL, "://")
	if !isOTLP(scheme) {
		return nil
	}
	acc.Compression = routing.CompressionGzip
	o := d.Spec.OTLP
	if o == nil {
		return nil
	}
	if o.Compression == routing.CompressionNone {
		acc.Compression = routing.CompressionNone
	}
	if o.HeadersSecretRef == nil {
		return nil
	}
	name := o.HeadersSecretRef.Name
	data, err := r.secretData(ctx, d.Namespace, name)
	if err != nil {
		return err
	}
	h, err := otlpHeaders(data)
	if err != nil {
		return &specError{reason: kubeplexv1alpha1.InvalidHeadersReason, msg: fmt.Sprintf("Secret %s: %v", name, err)}
	}
	acc.Headers = h
	return nil
}

// otlpHeaders turns a Secret's data into request headers with lower-case names (gRPC
// metadata must be lower-case; HTTP names are case-insensitive).
func otlpHeaders(data map[string][]byte) (map[string]string, error) {
	if len(data) > maxOTLPHeaders {
		return nil, fmt.Errorf("%d keys, at most %d headers are sent", len(data), maxOTLPHeaders)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range data {
			if !yield(k) {
				return
			}
		}
	})
	out := make(map[string]string, len(data))
	size := 0
	for _, k := range keys {
		v := string(data[k])
		name := strings.ToLower(k)
		switch {
		case !headerName(k):
			return nil, fmt.Errorf("key %q is not a header name", k)
		case slices.Contains(reservedOTLPHeaders, name) || strings.HasPrefix(name, "grpc-"):
			return nil, fmt.Errorf("key %q names a header the drain sets itself", k)
		case hasKey(out, name):
			return nil, fmt.Errorf("keys %q and another differ only in case", k)
		case !printableASCII(v):
			// gRPC metadata takes printable ASCII only; HTTP forbids control bytes.
			return nil, fmt.Errorf("the value of key %q is empty or not printable ASCII", k)
		}
		out[name] = v
		size += len(name) + len(v)
	}
	if size > maxOTLPHeaderBytes {
		return nil, fmt.Errorf("headers are %d bytes, at most %d are sent", size, maxOTLPHeaderBytes)
	}
	return out, nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func printableASCII(v string) bool {
	if strings.TrimSpace(v) == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// headerName: Secret keys are [-._a-zA-Z0-9]+, all of them token characters (RFC
// 9110 §5.6.2); checked again so a hand-made object cannot slip anything else in.
func headerName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}
