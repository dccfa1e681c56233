package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubeplexv1alpha1 "github.com/kubeplex/kubeplex/api/v1alpha1"
	"github.com/kubeplex/kubeplex/internal/testenv"
	"github.com/kubeplex/kubeplex/internal/wire"
	"github.com/kubeplex/kubeplex/router/drainpeer"
)

// TestOTLPDrainEndToEnd: LogDrains with otlp+http (API key from an opted-in headers
// Secret) and otlp+grpcs (CA from a Secret) to the OpenTelemetry Collector's OTLP
// receiver. The manager accepts them, the router delivers each line as a LogRecord
// with the app's attributes and the drain token, and both drains' status shows
// Delivering=True with the count; the API key appears in no status, Event or log.
func TestOTLPDrainEndToEnd(t *testing.T) {
	s := newStack(t)
	c, ctx := s.cluster, s.ctx
	ca := testenv.NewCA(t)
	plain := drainpeer.StartCollector(t, drainpeer.CollectorOptions{Headers: []string{"x-api-key"}})
	secure := drainpeer.StartCollector(t, drainpeer.CollectorOptions{Cert: ca})

	router := s.startRouter(t, nil)
	routerURL := router.URL
	manager := s.startManager(t, false, router, "--router-status-interval", "1s")

	const apiKey = "otel-api-key-5e1f0c9a77"
	app := &kubeplexv1alpha1.LogApp{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}
	hdrs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "otel-headers", Namespace: "shop"},
		Type: kubeplexv1alpha1.DrainCredentialsSecretType, StringData: map[string]string{"X-Api-Key": apiKey}}
	caSec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "otel-ca", Namespace: "shop"},
		Type: kubeplexv1alpha1.DrainCredentialsSecretType, StringData: map[string]string{"ca.crt": string(ca.PEM)}}
	viaHTTP := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "otel-http", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: "otlp+http://" + plain.HTTPAddr,
			OTLP: &kubeplexv1alpha1.OTLPOptions{HeadersSecretRef: &kubeplexv1alpha1.SecretReference{Name: "otel-headers"}}}}
	viaGRPC := &kubeplexv1alpha1.LogDrain{ObjectMeta: metav1.ObjectMeta{Name: "otel-grpcs", Namespace: "shop"},
		Spec: kubeplexv1alpha1.LogDrainSpec{AppRef: kubeplexv1alpha1.AppReference{Name: "web"}, URL: "otlp+grpcs://" + secure.GRPCAddr,
			TLS: &kubeplexv1alpha1.DrainTLS{ServerName: "otel.test", CASecretRef: &kubeplexv1alpha1.SecretKeyReference{Name: "otel-ca", Key: "ca.crt"}}}}
	for _, o := range []client.Object{app, hdrs, caSec, viaHTTP, viaGRPC} {
		if err := c.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	token := appToken(t, c, app)
	httpToken, grpcToken := drainReady(t, c, viaHTTP), drainReady(t, c, viaGRPC)
	waitRouters(t, c, s.adminURLs())
	// The router runs a drain once its own "Drain … added" line has reached it (the
	// manager posts that line only after the routers report the drain): lines posted
	// earlier could find the app without its drains and go to history only.
	for _, w := range []struct {
		col   *drainpeer.Collector
		token string
	}{{plain, httpToken}, {secure, grpcToken}} {
		testenv.Eventually(t, "drain "+w.token+" runs", func() error {
			for _, r := range w.col.Records(t) {
				if r.Attributes["kubeplex.source"] == "kubeplex" && strings.HasPrefix(r.Body, "Drain "+w.token+" added") {
					return nil
				}
			}
			return fmt.Errorf("no added line for %s yet", w.token)
		})
	}

	const n = 20
	var body []byte
	for i := range n {
		pri := wire.PriorityInfo
		if i%5 == 4 {
			pri = wire.PriorityError
		}
		body = wire.AppendFrame(body, fmt.Appendf(nil, "<%d>1 2026-11-25T10:00:%02d.000001Z h app web.%d - - otlp line %d", pri, i, i%2+1, i))
	}
	// Sent again until taken: a router that has not loaded the app's token yet answers 401.
	testenv.Eventually(t, "router takes the lines", func() error {
		return postLogs(ctx, routerURL, token, body, nil)
	})

	for _, tc := range []struct {
		name, token string
		col         *drainpeer.Collector
		drain       *kubeplexv1alpha1.LogDrain
	}{{"otlp+http", httpToken, plain, viaHTTP}, {"otlp+grpcs", grpcToken, secure, viaGRPC}} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []drainpeer.CollectorRecord
			testenv.Eventually(t, "app lines at the collector", func() error {
				lines = lines[:0]
				for _, r := range tc.col.Records(t) {
					if r.Attributes["kubeplex.source"] == "app" {
						lines = append(lines, r)
					}
				}
				if len(lines) < n {
					all := tc.col.Records(t)
					return fmt.Errorf("%d app records of %d: %+v", len(lines), len(all), all)
				}
				return nil
			})
			if len(lines) != n {
				t.Fatalf("%d app records, want %d", len(lines), n)
			}
			for i, r := range lines {
				wantSev := "INFORMATIONAL"
				if i%5 == 4 {
					wantSev = "ERROR"
				}
				if r.Body != fmt.Sprint("otlp line ", i) || r.SeverityText != wantSev || r.Attributes["kubeplex.process"] != fmt.Sprintf("web.%d", i%2+1) ||
					r.Time().UTC().Format(time.RFC3339Nano) != fmt.Sprintf("2026-11-25T10:00:%02d.000001Z", i) {
					t.Errorf("record %d = %+v", i, r)
				}
				if r.Resource["service.name"] != "web" || r.Resource["k8s.namespace.name"] != "shop" || r.Resource["kubeplex.drain.token"] != tc.token {
					t.Errorf("record %d resource %v", i, r.Resource)
				}
				if tc.col == plain && r.Headers["x-api-key"] != apiKey {
					t.Errorf("record %d came without the API key header", i)
				}
			}
			testenv.Eventually(t, "LogDrain Delivering with counts", func() error {
				var got kubeplexv1alpha1.LogDrain
				if err := c.Client.Get(ctx, client.ObjectKeyFromObject(tc.drain), &got); err != nil {
					return err
				}
				if !meta.IsStatusConditionTrue(got.Status.Conditions, kubeplexv1alpha1.DeliveringCondition) || got.Status.Delivered < n {
					return fmt.Errorf("delivered %d, conditions %+v", got.Status.Delivered, got.Status.Conditions)
				}
				if got.Status.Dropped != 0 || got.Status.LastDeliveryTime == nil {
					return fmt.Errorf("dropped %d, last delivery %v", got.Status.Dropped, got.Status.LastDeliveryTime)
				}
				return nil
			})
		})
	}

	var drains kubeplexv1alpha1.LogDrainList
	var evs corev1.EventList
	if err := c.Client.List(ctx, &drains, client.InNamespace("shop")); err != nil {
		t.Fatal(err)
	}
	if err := c.Client.List(ctx, &evs, client.InNamespace("shop")); err != nil {
		t.Fatal(err)
	}
	mustContainNone(t, "LogDrain objects", fmt.Sprintf("%+v", drains.Items), apiKey)
	mustContainNone(t, "Events", fmt.Sprintf("%+v", evs.Items), apiKey)
	for _, p := range []*testenv.Process{manager, router.Process} {
		mustContainNone(t, p.Name+" output", p.Out.String(), apiKey, token)
	}
}
