package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/controllers/routes"
	"github.com/kubeplex/kubeplex/internal/routing"
)

func TestOTLPHeaders(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
		want map[string]string
		err  string // "" = accepted
	}{
		{name: "lower-cased", data: map[string]string{"Authorization": "Bearer abc", "x-tenant": "t1"},
			want: map[string]string{"authorization": "Bearer abc", "x-tenant": "t1"}},
		{name: "dots and underscores", data: map[string]string{"api_key.v2": "k"}, want: map[string]string{"api_key.v2": "k"}},
		{name: "reserved", data: map[string]string{"Content-Type": "text/plain-secretvalue"}, err: `key "Content-Type" names a header the drain sets itself`},
		{name: "grpc reserved", data: map[string]string{"grpc-timeout": "1S"}, err: "sets itself"},
		{name: "case clash", data: map[string]string{"X-Key": "a", "x-key": "b"}, err: "differ only in case"},
		{name: "newline", data: map[string]string{"x-key": "a\r\nEvil: secretvalue"}, err: `the value of key "x-key" is empty or not printable ASCII`},
		{name: "non-ascii", data: map[string]string{"x-key": "ü-secretvalue"}, err: "not printable ASCII"},
		{name: "empty", data: map[string]string{"x-key": " "}, err: "empty"},
		{name: "bad name", data: map[string]string{"x key": "v"}, err: "not a header name"},
		{name: "too many", data: func() map[string]string {
			m := map[string]string{}
			for i := range 33 {
				m[fmt.Sprintf("h%d", i)] = "v"
			}
			return m
		}(), err: "at most 32"},
		{name: "too big", data: map[string]string{"x-big": strings.Repeat("v", 9000)}, err: "at most 8192"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := map[string][]byte{}
			for k, v := range tt.data {
				data[k] = []byte(v)
			}
			got, err := otlpHeaders(data)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("err = %v, want %q", err, tt.err)
			case tt.err != "" && strings.Contains(err.Error(), "secretvalue"):
				t.Fatalf("error repeats a header value: %v", err)
			case tt.err == "" && !maps.Equal(got, tt.want):
				t.Fatalf("headers = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLogDrainOTLP: an otlp+https drain with a headers Secret and a CA Secret lands
// in the routing table with lower-case headers, gzip by default and the CA; a headers
// Secret that did not opt in, or holds a header the drain sets itself, keeps it out
// (Ready=False) without its values reaching status, Events or logs; a change of the
// Secret reaches the table.
func TestLogDrainOTLP(t *testing.T) {
	m := startManager(t, Config{})
	ns := newNamespace(t)
	ctx := context.Background()
	const apiKey, apiKey2 = "otlp-api-key-0123456789", "otlp-api-key-rotated-9876"
	create(t, newApp(ns, "web"))
	pemCA := selfSignedPEM(t)
	ca := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"}, Type: kubeplexv1alpha1.DrainCredentialsSecretType,
		StringData: map[string]string{"ca.crt": string(pemCA)}}
	hdrs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "otel-headers"},
		StringData: map[string]string{"X-Api-Key": apiKey, "X-Tenant": "team-a"}}
	create(t, ca, hdrs)
	d := newDrain(ns, "otel", "web", "otlp+https://allowed.test/v1/logs")
	d.Spec.TLS = &kubeplexv1alpha1.DrainTLS{CASecretRef: &kubeplexv1alpha1.SecretKeyReference{Name: "ca", Key: "ca.crt"}}
	d.Spec.OTLP = &kubeplexv1alpha1.OTLPOptions{HeadersSecretRef: &kubeplexv1alpha1.SecretReference{Name: "otel-headers"}}
	create(t, d)
	// Not opted in: refused, the key never read into the table.
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.SecretNotAllowedReason)

	get(t, hdrs)
	hdrs.Labels = map[string]string{kubeplexv1alpha1.DrainCredentialsLabel: "true"}
	hdrs.Data["Content-Type"] = []byte("application/json-" + apiKey2)
	if err := k8s.Update(ctx, hdrs); err != nil {
		t.Fatal(err)
	}
	c := condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionFalse, kubeplexv1alpha1.InvalidHeadersReason)
	if !strings.Contains(c.Message, "Content-Type") {
		t.Errorf("condition message %q does not name the key", c.Message)
	}

	get(t, hdrs)
	delete(hdrs.Data, "Content-Type")
	if err := k8s.Update(ctx, hdrs); err != nil {
		t.Fatal(err)
	}
	condition(t, d, kubeplexv1alpha1.ReadyCondition, metav1.ConditionTrue, kubeplexv1alpha1.ReconciledReason)
	want := map[string]string{"x-api-key": apiKey, "x-tenant": "team-a"}
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 {
			return fmt.Errorf("drains %v", drainIDs(a))
		}
		dr := a.Drains[0]
		if dr.URL != "otlp+https://allowed.test/v1/logs" || !maps.Equal(dr.Headers, want) || dr.Compression != routing.CompressionGzip ||
			dr.TLS == nil || dr.TLS.CAPEM != string(pemCA) {
			return fmt.Errorf("drain %s: url %s, %d headers, compression %q, tls %v", dr.ID, dr.URL, len(dr.Headers), dr.Compression, dr.TLS != nil)
		}
		return nil
	})

	// A rotated key and compression off reach the table.
	get(t, hdrs)
	hdrs.Data["X-Api-Key"] = []byte(apiKey2)
	if err := k8s.Update(ctx, hdrs); err != nil {
		t.Fatal(err)
	}
	get(t, d)
	d.Spec.OTLP.Compression = routing.CompressionNone
	if err := k8s.Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	tableApp(t, routes.ID(ns, "web"), func(a *routing.App) error {
		if a == nil || len(a.Drains) != 1 || a.Drains[0].Headers["x-api-key"] != apiKey2 || a.Drains[0].Compression != routing.CompressionNone {
			return fmt.Errorf("rotated key or compression not in the table")
		}
		return nil
	})
	waitEvents(t, d, kubeplexv1alpha1.SecretNotAllowedReason, kubeplexv1alpha1.InvalidHeadersReason)
	assertNoLeak(t, m.logs, ns, map[string]string{"api key": apiKey, "rotated api key": apiKey2})
}
