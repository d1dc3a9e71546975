package recs

import "github.com/prometheus/client_golang/prometheus"

// metrics are the service's Prometheus collectors, named for the origin
// binary that hosts the service.
type metrics struct {
	requests     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	cacheHits    prometheus.Counter
	cacheMisses  prometheus.Counter
	trainings    *prometheus.CounterVec
	trainSeconds prometheus.Gauge
	tracks       prometheus.Gauge
	users        prometheus.Gauge
	cold         prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "origin_recs_requests_total",
			Help: "Recommendation HTTP requests by endpoint (next, user) and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "origin_recs_request_duration_seconds",
			Help:    "Time to answer a recommendation request, by endpoint.",
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 14), // 25µs .. 200ms
		}, []string{"endpoint"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_recs_cache_hits_total",
			Help: "Recommendation responses served from the response cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_recs_cache_misses_total",
			Help: "Recommendation responses computed from the model.",
		}),
		trainings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "origin_recs_trainings_total",
			Help: "Model trainings by result (ok, error).",
		}, []string{"result"}),
		trainSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "origin_recs_last_training_seconds",
			Help: "Wall time of the last successful training.",
		}),
		tracks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "origin_recs_model_tracks",
			Help: "Tracks in the current model.",
		}),
		users: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "origin_recs_model_users",
			Help: "Users in the current model.",
		}),
		cold: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "origin_recs_model_cold_tracks",
			Help: "Tracks without plays placed from their content embedding.",
		}),
	}
}

func (m *metrics) register(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.cacheHits, m.cacheMisses,
		m.trainings, m.trainSeconds, m.tracks, m.users, m.cold} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
