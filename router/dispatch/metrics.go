package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubeplex/kubeplex/router/drain"
	"github.com/kubeplex/kubeplex/router/metrics"
)

// scrapeMetrics is the Prometheus collector that exports the per-app and per-drain
// atomics at scrape time.
type scrapeMetrics struct{ d *Dispatcher }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Namespace+"_"+name, help, labels, nil)
}

var (
	descAppIn        = desc("app_messages_in_total", "Messages published into an app's stream.", "app")
	descAppHistory   = desc("app_history_lines", "Lines held in an app's history.", "app")
	descAppMemory    = desc("app_history_bytes", "Bytes held by an app's history (records, index and chunk slack).", "app")
	descDrainOffered = desc("drain_messages_offered_total", "Messages offered to a drain's queue.", "app", "drain")
	descDrainOut     = desc("drain_messages_delivered_total", "Messages delivered to a drain.", "app", "drain")
	descDrainAnn     = desc("drain_drops_announced_total", "Dropped messages announced in-band to a drain (L10).", "app", "drain")
	descDrainErrors  = desc("drain_errors_total", "Delivery errors of a drain, by reason.", "app", "drain", "reason")
	descDrainQueue   = desc("drain_queue_depth", "Messages waiting in a drain's queue.", "app", "drain")
	descTable        = desc("routing_table_info", "The routing table version in use (value 1).", "version")
	descDrainDropped = desc("drain_messages_dropped_total",
		"Messages dropped for a drain (queue overflow, refused or lost batches).", "app", "drain")
)

func (c *scrapeMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAppIn, descAppHistory, descAppMemory, descDrainOffered, descDrainOut,
		descDrainDropped, descDrainAnn, descDrainErrors, descDrainQueue, descTable} {
		ch <- d
	}
}

func (c *scrapeMetrics) Collect(ch chan<- prometheus.Metric) {
	s := c.d.snap.Load()
	if s == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descTable, prometheus.GaugeValue, 1, s.version)
	for _, a := range s.apps {
		ch <- prometheus.MustNewConstMetric(descAppIn, prometheus.CounterValue, float64(a.In.Load()), a.ID)
		ch <- prometheus.MustNewConstMetric(descAppHistory, prometheus.GaugeValue, float64(a.History.Len()), a.ID)
		ch <- prometheus.MustNewConstMetric(descAppMemory, prometheus.GaugeValue, float64(a.History.Footprint()), a.ID)
		for _, r := range a.Drains() {
			st, id := r.Stats, r.Config.ID
			ch <- prometheus.MustNewConstMetric(descDrainOffered, prometheus.CounterValue, float64(st.Offered.Load()), a.ID, id)
			ch <- prometheus.MustNewConstMetric(descDrainOut, prometheus.CounterValue, float64(st.Delivered.Load()), a.ID, id)
			ch <- prometheus.MustNewConstMetric(descDrainDropped, prometheus.CounterValue, float64(st.Dropped.Load()), a.ID, id)
			ch <- prometheus.MustNewConstMetric(descDrainAnn, prometheus.CounterValue, float64(st.Announced.Load()), a.ID, id)
			for i, reason := range drain.Reasons {
				if n := st.ByReason[i].Load(); n > 0 {
					ch <- prometheus.MustNewConstMetric(descDrainErrors, prometheus.CounterValue, float64(n), a.ID, id, reason)
				}
			}
			ch <- prometheus.MustNewConstMetric(descDrainQueue, prometheus.GaugeValue, float64(r.Queue.Len()), a.ID, id)
		}
	}
}
