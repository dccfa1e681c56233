package controllers

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
)

// TestAPIValidation: what the CRD schemas (CEL and OpenAPI) refuse, and with which
// message, against the real API server. No manager runs: this is the API alone.
func TestAPIValidation(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	tlsOpts := &kubeplexv1alpha1.DrainTLS{InsecureSkipVerify: true}
	creds := &kubeplexv1alpha1.CredentialsSecretReference{Name: "creds"}
	otlp := &kubeplexv1alpha1.OTLPOptions{Compression: "none", HeadersSecretRef: &kubeplexv1alpha1.SecretReference{Name: "hdrs"}}
	const tlsOnly = "tls is only used by syslog+tls, https, otlp+https and otlp+grpcs drains"
	drains := []struct {
		name  string
		url   string
		tls   *kubeplexv1alpha1.DrainTLS
		creds *kubeplexv1alpha1.CredentialsSecretReference
		otlp  *kubeplexv1alpha1.OTLPOptions
		want  string // "" = accepted
	}{
		{"tls-on-syslog", "syslog://logs.example.test:514", tlsOpts, nil, nil, tlsOnly},
		{"tls-on-http", "http://logs.example.test/x", tlsOpts, nil, nil, tlsOnly},
		{"tls-on-syslog-tls", "syslog+tls://logs.example.test:6514", tlsOpts, nil, nil, ""},
		{"tls-on-https", "https://logs.example.test/x", tlsOpts, nil, nil, ""},
		{"creds-on-syslog", "syslog://logs.example.test:514", nil, creds, nil, "credentialsSecretRef is only used by http and https drains"},
		{"creds-on-syslog-tls", "syslog+tls://logs.example.test:6514", nil, creds, nil, "credentialsSecretRef is only used by http and https drains"},
		{"creds-on-https", "https://logs.example.test/x", nil, creds, nil, ""},
		// The router refuses syslog+tcp too (router/dispatch DrainType): neither takes it.
		{"syslog-tcp", "syslog+tcp://logs.example.test:514", nil, nil, nil, "url scheme must be one of syslog, syslog+tls, http, https, otlp+http"},
		{"otlp-http", "otlp+http://otel.example.test", nil, nil, otlp, ""},
		{"otlp-http-path", "otlp+http://otel.example.test:4318/custom/logs", nil, nil, nil, ""},
		{"otlp-https-tls", "otlp+https://otel.example.test", tlsOpts, nil, otlp, ""},
		{"otlp-grpc", "otlp+grpc://otel.example.test:4317", nil, nil, otlp, ""},
		{"otlp-grpcs-tls", "otlp+grpcs://otel.example.test", tlsOpts, nil, nil, ""},
		{"tls-on-otlp-http", "otlp+http://otel.example.test", tlsOpts, nil, nil, tlsOnly},
		{"tls-on-otlp-grpc", "otlp+grpc://otel.example.test:4317", tlsOpts, nil, nil, tlsOnly},
		{"otlp-grpc-path", "otlp+grpc://otel.example.test:4317/v1/logs", nil, nil, nil, "otlp+grpc urls take no path"},
		{"otlp-on-https", "https://logs.example.test/x", nil, nil, otlp, "otlp is only used by otlp+http"},
		{"otlp-on-syslog", "syslog://logs.example.test:514", nil, nil, otlp, "otlp is only used by otlp+http"},
		{"creds-on-otlp", "otlp+https://otel.example.test", nil, creds, nil, "credentialsSecretRef is only used by http and https drains"},
		{"otlp-bad-compression", "otlp+http://otel.example.test", nil, nil, &kubeplexv1alpha1.OTLPOptions{Compression: "zstd"}, "compression"},
	}
	for _, tc := range drains {
		t.Run("drain "+tc.name, func(t *testing.T) {
			d := newDrain(ns, tc.name, "web", tc.url)
			d.Spec.TLS, d.Spec.CredentialsSecretRef, d.Spec.OTLP = tc.tls, tc.creds, tc.otlp
			err := k8s.Create(ctx, d)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want refused with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("refused with %v, want %q", err, tc.want)
			}
		})
	}

	t.Run("appRef is immutable", func(t *testing.T) {
		d := newDrain(ns, "moving", "web", "syslog://logs.example.test:514")
		create(t, d)
		patch := client.MergeFrom(d.DeepCopy())
		d.Spec.AppRef.Name = "other"
		err := k8s.Patch(ctx, d, patch)
		if err == nil || !strings.Contains(err.Error(), "appRef is immutable") {
			t.Errorf("changing appRef: %v, want refused as immutable", err)
		}
		// Other fields still change.
		patch = client.MergeFrom(d.DeepCopy())
		d.Spec.AppRef.Name = "web"
		d.Spec.URL = "syslog://logs.example.test:515"
		if err := k8s.Patch(ctx, d, patch); err != nil {
			t.Errorf("changing url: %v", err)
		}
	})

	t.Run("historySize", func(t *testing.T) {
		unset := newApp(ns, "unset")
		create(t, unset)
		if unset.Spec.HistorySize != 1500 {
			t.Errorf("unset historySize stored as %d, want the default 1500", unset.Spec.HistorySize)
		}
		one := newApp(ns, "one")
		one.Spec.HistorySize = 1
		create(t, one)
		get(t, one)
		if one.Spec.HistorySize != 1 {
			t.Errorf("historySize 1 stored as %d", one.Spec.HistorySize)
		}
		// 0 written explicitly (not the Go zero value, which is omitted) is refused,
		// not silently turned into the default.
		zero := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": kubeplexv1alpha1.GroupVersion.String(), "kind": "LogApp",
			"metadata": map[string]any{"name": "zero", "namespace": ns},
			"spec":     map[string]any{"historySize": int64(0)},
		}}
		if err := k8s.Create(ctx, zero); err == nil || !strings.Contains(err.Error(), "historySize") {
			t.Errorf("historySize 0: %v, want refused", err)
		}
		big := newApp(ns, "big")
		big.Spec.HistorySize = 100001
		if err := k8s.Create(ctx, big); err == nil {
			t.Error("historySize 100001 accepted")
		}
	})

	t.Run("printer columns", func(t *testing.T) {
		for _, crd := range []string{"logapps.kubeplex.io", "logdrains.kubeplex.io"} {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
			if err := k8s.Get(ctx, client.ObjectKey{Name: crd}, u); err != nil {
				t.Fatal(err)
			}
			versions, _, _ := unstructured.NestedSlice(u.Object, "spec", "versions")
			if len(versions) != 1 {
				t.Fatalf("%s: %d versions", crd, len(versions))
			}
			cols, _, _ := unstructured.NestedSlice(versions[0].(map[string]any), "additionalPrinterColumns")
			names := make([]string, 0, len(cols))
			reason := ""
			for _, c := range cols {
				m := c.(map[string]any)
				names = append(names, m["name"].(string))
				if m["name"] == "Reason" {
					reason, _ = m["jsonPath"].(string)
				}
			}
			if reason != `.status.conditions[?(@.type=="Ready")].reason` {
				t.Errorf("%s columns %v: no Reason column from the Ready condition (got %q)", crd, names, reason)
			}
		}
	})
}
