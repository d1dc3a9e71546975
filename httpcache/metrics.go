package httpcache

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the http routes' Prometheus series of one node, named
// <role>_http_<thing>_<unit>, each with a route label (the route's
// prefix). One Metrics serves every route of a node.
type Metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	upstream  *prometheus.CounterVec
	collapsed *prometheus.CounterVec
	stored    *prometheus.CounterVec
	entries   *prometheus.GaugeVec
}

// NewMetrics registers the series on reg.
func NewMetrics(role string, reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: role + "_http_requests_total",
			Help: "Requests on http routes, by route and result (hit, stale, revalidated, miss, pass, error, rejected).",
		}, []string{"route", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    role + "_http_request_duration_seconds",
			Help:    "Time from request to response handed to the socket on http routes (streamed bodies excluded).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: role + "_http_upstream_requests_total",
			Help: "Requests sent upstream by http routes, by route and outcome (ok: any response; error: none).",
		}, []string{"route", "outcome"}),
		collapsed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: role + "_http_collapsed_total",
			Help: "Requests on http routes that waited for another request's fetch of the same URL instead of going upstream.",
		}, []string{"route"}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: role + "_http_stored_total",
			Help: "Responses (or pieces of partial content) stored by http routes.",
		}, []string{"route"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: role + "_http_entries",
			Help: "Stored responses indexed by http routes (bodies may since have been evicted from the store).",
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.latency, m.upstream, m.collapsed, m.stored, m.entries)
	return m
}

// routeMetrics are a route's curried series.
type routeMetrics struct {
	results   map[string]prometheus.Counter
	latency   prometheus.Observer
	upOK      prometheus.Counter
	upErr     prometheus.Counter
	collapsed prometheus.Counter
	stored    prometheus.Counter
	entries   prometheus.Gauge
}

var results = []string{"hit", "stale", "revalidated", "miss", "pass", "error", "rejected"}

func (m *Metrics) route(name string) *routeMetrics {
	if m == nil {
		m = NewMetrics("http", prometheus.NewRegistry())
	}
	r := &routeMetrics{
		results:   map[string]prometheus.Counter{},
		latency:   m.latency.WithLabelValues(name),
		upOK:      m.upstream.WithLabelValues(name, "ok"),
		upErr:     m.upstream.WithLabelValues(name, "error"),
		collapsed: m.collapsed.WithLabelValues(name),
		stored:    m.stored.WithLabelValues(name),
		entries:   m.entries.WithLabelValues(name),
	}
	for _, res := range results {
		r.results[res] = m.requests.WithLabelValues(name, res)
	}
	return r
}

func (r *routeMetrics) observe(result string, d time.Duration) {
	r.results[result].Inc()
	r.latency.Observe(d.Seconds())
}
