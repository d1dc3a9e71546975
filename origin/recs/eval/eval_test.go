package eval

import (
	"math"
	"testing"
)

func TestMeasures(t *testing.T) {
	rel := map[string]bool{"a": true, "c": true}
	tests := []struct {
		ranked         []string
		k              int
		prec, ap, ndcg float64
	}{
		{[]string{"a", "b", "c"}, 3, 2.0 / 3, (1 + 2.0/3) / 2, (1 + 1/math.Log2(4)) / (1 + 1/math.Log2(3))},
		{[]string{"b", "d"}, 2, 0, 0, 0},
		{[]string{"c", "a"}, 2, 1, 1, 1},
		{[]string{"c"}, 2, 0.5, 0.5, 1 / (1 + 1/math.Log2(3))},
		{nil, 0, 0, 0, 0},
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	for _, tt := range tests {
		if got := Precision(tt.ranked, rel, tt.k); !near(got, tt.prec) {
			t.Errorf("Precision(%q, %d) = %v, want %v", tt.ranked, tt.k, got, tt.prec)
		}
		if got := AveragePrecision(tt.ranked, rel, tt.k); !near(got, tt.ap) {
			t.Errorf("AveragePrecision(%q, %d) = %v, want %v", tt.ranked, tt.k, got, tt.ap)
		}
		if got := NDCG(tt.ranked, rel, tt.k); !near(got, tt.ndcg) {
			t.Errorf("NDCG(%q, %d) = %v, want %v", tt.ranked, tt.k, got, tt.ndcg)
		}
	}
}
