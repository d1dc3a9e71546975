package httpcache

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/metric"
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

// latencyBuckets are the request duration buckets, in seconds: 100µs to
// 10s.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics registers the series on reg. It panics if one is already
// registered there, as prometheus.MustRegister does.
func NewMetrics(role string, reg prometheus.Registerer) *Metrics {
	s := metric.NewSet(reg)
	m := &Metrics{
		requests: s.CounterVec(role+"_http_requests_total",
			"Requests on http routes, by route and result (hit, stale, revalidated, miss, pass, error, rejected).", "route", "result"),
		latency: s.HistogramVec(role+"_http_request_duration_seconds",
			"Time from request to response handed to the socket on http routes (streamed bodies excluded).", latencyBuckets, "route"),
		upstream: s.CounterVec(role+"_http_upstream_requests_total",
			"Requests sent upstream by http routes, by route and outcome (ok: any response; error: none).", "route", "outcome"),
		collapsed: s.CounterVec(role+"_http_collapsed_total",
			"Requests on http routes that waited for another request's fetch of the same URL instead of going upstream.", "route"),
		stored: s.CounterVec(role+"_http_stored_total",
			"Responses (or pieces of partial content) stored by http routes.", "route"),
		entries: s.GaugeVec(role+"_http_entries",
			"Stored responses indexed by http routes (bodies may since have been evicted from the store).", "route"),
	}
	if err := s.Err(); err != nil {
		panic(err)
	}
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
