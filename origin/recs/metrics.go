package recs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/metric"
)

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

// newMetrics makes the collectors and registers them on reg, which may
// be nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	s := metric.NewSet(reg)
	m := &metrics{
		requests: s.CounterVec("origin_recs_requests_total",
			"Recommendation HTTP requests by endpoint (next, user) and status code.", "endpoint", "code"),
		latency: s.HistogramVec("origin_recs_request_duration_seconds",
			"Time to answer a recommendation request, by endpoint.", prometheus.ExponentialBuckets(25e-6, 2, 14), "endpoint"), // 25µs .. 200ms
		cacheHits: s.Counter("origin_recs_cache_hits_total",
			"Recommendation responses served from the response cache."),
		cacheMisses: s.Counter("origin_recs_cache_misses_total",
			"Recommendation responses computed from the model."),
		trainings: s.CounterVec("origin_recs_trainings_total",
			"Model trainings by result (ok, error).", "result"),
		trainSeconds: s.Gauge("origin_recs_last_training_seconds",
			"Wall time of the last successful training."),
		tracks: s.Gauge("origin_recs_model_tracks",
			"Tracks in the current model."),
		users: s.Gauge("origin_recs_model_users",
			"Users in the current model."),
		cold: s.Gauge("origin_recs_model_cold_tracks",
			"Tracks without plays placed from their content embedding."),
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
