package metric

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSet: each series is registered under its name, help and labels.
// Mutations caught: a constructor that does not register, drops the help,
// the labels or the buckets.
func TestSet(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewSet(reg)
	s.Counter("x_c_total", "a counter").Add(2)
	s.CounterVec("x_cv_total", "a counter vec", "a", "b").WithLabelValues("1", "2").Inc()
	s.Gauge("x_g", "a gauge").Set(3)
	s.GaugeVec("x_gv", "a gauge vec", "a").WithLabelValues("1").Set(4)
	s.GaugeFunc("x_gf", "a gauge func", func() float64 { return 5 })
	s.Histogram("x_h_seconds", "a histogram", []float64{1, 2}).Observe(1.5)
	s.HistogramVec("x_hv_seconds", "a histogram vec", []float64{1}, "a").WithLabelValues("1").Observe(0.5)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	want := `# HELP x_c_total a counter
# TYPE x_c_total counter
x_c_total 2
# HELP x_cv_total a counter vec
# TYPE x_cv_total counter
x_cv_total{a="1",b="2"} 1
# HELP x_g a gauge
# TYPE x_g gauge
x_g 3
# HELP x_gf a gauge func
# TYPE x_gf gauge
x_gf 5
# HELP x_gv a gauge vec
# TYPE x_gv gauge
x_gv{a="1"} 4
# HELP x_h_seconds a histogram
# TYPE x_h_seconds histogram
x_h_seconds_bucket{le="1"} 0
x_h_seconds_bucket{le="2"} 1
x_h_seconds_bucket{le="+Inf"} 1
x_h_seconds_sum 1.5
x_h_seconds_count 1
# HELP x_hv_seconds a histogram vec
# TYPE x_hv_seconds histogram
x_hv_seconds_bucket{a="1",le="1"} 1
x_hv_seconds_bucket{a="1",le="+Inf"} 1
x_hv_seconds_sum{a="1"} 0.5
x_hv_seconds_count{a="1"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestSetFirstError: a name registered twice is an error, the first one
// is kept, and nothing is registered after it. Mutations caught: ignoring
// Register's error, overwriting it with a later one (nil or not).
func TestSetFirstError(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "dup_total", Help: "h"}))
	s := NewSet(reg)
	s.Counter("dup_total", "h")
	first := s.Err()
	if first == nil {
		t.Fatal("registering dup_total twice: no error")
	}
	s.Gauge("later", "h")
	s.Gauge("dup_total", "other")
	if s.Err() != first {
		t.Errorf("Err = %v, want the first error %v", s.Err(), first)
	}
	if n, _ := testutil.GatherAndCount(reg, "later"); n != 0 {
		t.Errorf("%d series named later registered after the error", n)
	}
}

// TestSetNil: without a registerer the series work and nothing fails.
func TestSetNil(t *testing.T) {
	s := NewSet(nil)
	c := s.Counter("c_total", "h")
	c.Inc()
	s.Counter("c_total", "h") // twice is fine: nothing is registered
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(c); got != 1 {
		t.Errorf("counter = %v, want 1", got)
	}
}
