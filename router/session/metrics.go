package session

import "github.com/prometheus/client_golang/prometheus"

// metrics of sessions. Labels are fixed words (format, refusal reason): never a
// session id, app filter or peer address.
type metrics struct {
	active     prometheus.Gauge
	opened     *prometheus.CounterVec
	refused    *prometheus.CounterVec
	lines      prometheus.Counter
	peerErrors prometheus.Counter
	dropped    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kubeplex_router_sessions_active",
			Help: "Log sessions being streamed from this replica (route /sessions)."}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubeplex_router_sessions_opened_total",
			Help: "Log sessions opened (route /sessions), by format."}, []string{"format"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubeplex_router_sessions_refused_total",
			Help: "Requests to /sessions and peer calls refused, by reason."}, []string{"reason"}),
		lines: prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeplex_router_session_lines_total",
			Help: "Lines sent to log-session clients (route /sessions)."}),
		peerErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeplex_router_session_peer_errors_total",
			Help: "Failed or timed-out calls to other replicas for a session."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "kubeplex_router_session_dropped_total",
			Help: "Lines dropped for slow session readers (announced to them as L11)."}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.opened, m.refused, m.lines, m.peerErrors, m.dropped)
	}
	return m
}
