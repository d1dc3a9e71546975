// Package zipf draws ranks from a Zipf distribution, the popularity law
// of music catalogs (and of web objects): rank k (from 0) with probability
// proportional to 1/(k+1)^s. The load generator (loadtest/workload), the
// cache simulations and the tests that model a POP's load all draw from
// this one sampler, so their figures describe the same traffic.
package zipf

import (
	"math"
	"math/rand/v2"
)

// Zipf draws ranks 0..n-1 with probability proportional to 1/(rank+1)^s,
// for any s >= 0 (math/rand's Zipf needs s > 1; music catalogs are near
// 1). It uses rejection-inversion (Hörmann and Derflinger, 1996): constant
// memory and time per draw, so a 100M-track catalog costs nothing to set
// up. Safe for concurrent use; the randomness comes from the caller.
type Zipf struct {
	n, s     float64
	hX1, hN  float64 // hIntegral(1.5) - 1, hIntegral(n + 0.5)
	squeeze  float64
	fallback bool // n == 1
}

// New returns a Zipf distribution over n >= 1 ranks with exponent s.
func New(n int, s float64) *Zipf {
	z := &Zipf{n: float64(n), s: s, fallback: n <= 1}
	z.hX1 = z.hIntegral(1.5) - 1
	z.hN = z.hIntegral(z.n + 0.5)
	z.squeeze = 2 - z.hIntegralInverse(z.hIntegral(2.5)-z.h(2))
	return z
}

// Draw returns a rank.
func (z *Zipf) Draw(r *rand.Rand) int {
	if z.fallback {
		return 0
	}
	for {
		u := z.hN + r.Float64()*(z.hX1-z.hN)
		x := z.hIntegralInverse(u)
		k := math.Floor(x + 0.5)
		k = min(max(k, 1), z.n)
		// Accept at once inside the squeeze, else by the exact test.
		if k-x <= z.squeeze || u >= z.hIntegral(k+0.5)-z.h(k) {
			return int(k) - 1
		}
	}
}

// h is the unnormalised density x^-s.
func (z *Zipf) h(x float64) float64 { return math.Exp(-z.s * math.Log(x)) }

// hIntegral is the integral of h from 1 to x: (x^(1-s) - 1)/(1-s), or
// log x when s = 1, written so that it stays exact near s = 1.
func (z *Zipf) hIntegral(x float64) float64 {
	lx := math.Log(x)
	return expm1Over((1-z.s)*lx) * lx
}

// hIntegralInverse inverts hIntegral.
func (z *Zipf) hIntegralInverse(x float64) float64 {
	t := max(x*(1-z.s), -1) // rounding can push it just below -1
	return math.Exp(log1pOver(t) * x)
}

// expm1Over is (e^x - 1)/x, 1 at 0.
func expm1Over(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x/2*(1+x/3)
}

// log1pOver is log(1+x)/x, 1 at 0.
func log1pOver(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x/3)
}
