// Package metric declares a component's Prometheus series one call each:
// a Set makes a counter, gauge or histogram (plain or with labels) from
// its name and help, and registers it on the component's registerer as it
// goes, keeping the first registration error for the constructor to
// return. Names follow <binary>_<thing>_<unit>; the Set does not change
// them.
package metric

import "github.com/prometheus/client_golang/prometheus"

// Set makes series and registers each on one registerer. A nil
// registerer makes them without registering them (a component built
// without metrics still counts, unseen). Not safe for concurrent use: a
// constructor uses one and drops it.
type Set struct {
	reg prometheus.Registerer
	err error
}

// NewSet returns a Set that registers on reg, which may be nil.
func NewSet(reg prometheus.Registerer) *Set { return &Set{reg: reg} }

// Err returns the first registration error (a name registered twice), or
// nil.
func (s *Set) Err() error { return s.err }

// register registers c unless reg is nil or a registration already
// failed, and returns c.
func register[C prometheus.Collector](s *Set, c C) C {
	if s.reg != nil && s.err == nil {
		s.err = s.reg.Register(c)
	}
	return c
}

// Counter makes a counter.
func (s *Set) Counter(name, help string) prometheus.Counter {
	return register(s, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec makes a counter with labels.
func (s *Set) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(s, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// Gauge makes a gauge.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	return register(s, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec makes a gauge with labels.
func (s *Set) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(s, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// GaugeFunc makes a gauge whose value f gives at each scrape; f must be
// safe for concurrent use.
func (s *Set) GaugeFunc(name, help string, f func() float64) prometheus.GaugeFunc {
	return register(s, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Histogram makes a histogram with buckets (upper bounds, in the unit of
// the name).
func (s *Set) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return register(s, prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}))
}

// HistogramVec makes a histogram with buckets and labels.
func (s *Set) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(s, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}
