// Package metrics holds the router's Prometheus registry and the few instruments that
// are updated as events happen. Per-app and per-drain counters live as atomics in
// the dispatcher and are read at scrape time, so the message path pays nothing for
// them. Labels carry app and drain IDs ("<namespace>/<name>"), never tokens.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every router metric.
const Namespace = "kubeplex_router"

// Metrics are the router's event-driven instruments.
type Metrics struct {
	Registry *prometheus.Registry
	// IngestMessages counts accepted messages by protocol (http, tcp, tls, udp).
	IngestMessages *prometheus.CounterVec
	// IngestErrors counts refused requests, frames and messages by protocol and reason.
	IngestErrors *prometheus.CounterVec
	// IngestHeld counts POST /logs answers held for room in drain queues
	// (--http-pushback); IngestHeldSeconds sums how long they were held.
	IngestHeld        prometheus.Counter
	IngestHeldSeconds prometheus.Counter
	// IngestRequest observes how long POST /logs took inside the router, from the
	// handler's start to its answer (reading the body included): beside a sender's
	// round trip it tells the handler's time from the scheduler's and the network's.
	IngestRequest prometheus.Histogram
	// DeliveryLatency observes, per delivered batch, how long its oldest message waited
	// between ingest and delivery, by drain type.
	DeliveryLatency *prometheus.HistogramVec
	// TableSwaps counts routing tables applied; TableErrors counts tables refused.
	TableSwaps  prometheus.Counter
	TableErrors prometheus.Counter
	// CollectorStateErrors counts collectors' warnings that a process's restart count
	// could not be kept (records with MSGID state-error), by app.
	CollectorStateErrors *prometheus.CounterVec
}

// New registers the instruments (and Go/process collectors) in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		IngestMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "ingest_messages_total",
			Help: "Messages accepted, by protocol.",
		}, []string{"protocol"}),
		IngestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "ingest_errors_total",
			Help: "Requests, frames or messages refused at ingest, by protocol and reason.",
		}, []string{"protocol", "reason"}),
		IngestHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "ingest_held_total",
			Help: "POST /logs answers held until a delivering drain of the app had room (--http-pushback).",
		}),
		IngestHeldSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "ingest_held_seconds_total",
			Help: "Time POST /logs answers were held for room in drain queues.",
		}),
		IngestRequest: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "ingest_request_seconds",
			Help:    "Time POST /logs answers took inside the router's handler, reading the body included (answers 204 only).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		DeliveryLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "delivery_latency_seconds",
			Help:    "Time from ingest to delivery of the oldest message of each delivered batch, by drain type.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 4, 12),
		}, []string{"type"}),
		TableSwaps: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "routing_table_swaps_total",
			Help: "Routing tables applied.",
		}),
		TableErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "routing_table_errors_total",
			Help: "Routing tables that could not be read or applied.",
		}),
		CollectorStateErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "collector_state_errors_total",
			Help: "Collector warnings that a process's restart count could not be kept, by app.",
		}, []string{"app"}),
	}
	m.Registry.MustRegister(m.IngestMessages, m.IngestErrors, m.IngestHeld, m.IngestHeldSeconds, m.IngestRequest, m.DeliveryLatency,
		m.TableSwaps, m.TableErrors, m.CollectorStateErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveDelivery returns the latency observer for one drain type.
func (m *Metrics) ObserveDelivery(drainType string) func(time.Duration) {
	o := m.DeliveryLatency.WithLabelValues(drainType)
	return func(d time.Duration) { o.Observe(d.Seconds()) }
}
