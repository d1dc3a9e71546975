package plan

import (
	"math"
	"sort"
)

// BytesPerKbpsSecond is the bytes one second of audio takes at 1 kbit/s:
// 1000 bit / 8.
const BytesPerKbpsSecond = 125

// CatalogBytes is every tier of every track:
// tracks × avgSeconds × Σ kbps × 125.
func CatalogBytes(tracks int64, avgSeconds float64, tiersKbps []int) float64 {
	return float64(tracks) * TrackBytes(avgSeconds, tiersKbps)
}

// TrackBytes is one track of avgSeconds at every tier: avgSeconds × Σ kbps × 125.
func TrackBytes(avgSeconds float64, tiersKbps []int) float64 {
	sum := 0
	for _, k := range tiersKbps {
		sum += k
	}
	return avgSeconds * float64(sum) * BytesPerKbpsSecond
}

// MixKbps is the mean bitrate of a stream: Σ mix_i × kbps_i / Σ mix_i.
func MixKbps(tiersKbps []int, mix []float64) float64 {
	var num, den float64
	for i, k := range tiersKbps {
		num += mix[i] * float64(k)
		den += mix[i]
	}
	return num / den
}

// EgressBps is what streams concurrent streams take from the edges, in
// bit/s: streams × mixKbps × 1000 × overhead, where overhead is bytes
// fetched per byte played (players buffer ahead of what they play).
func EgressBps(streams int64, mixKbps, overhead float64) float64 {
	return float64(streams) * mixKbps * 1000 * overhead
}

// NodesNPlus1 is ceil(load / perNode) + 1: enough nodes for the load with
// one down. Zero load needs one node (and its spare): 2.
func NodesNPlus1(load, perNode float64) int64 {
	return int64(math.Max(1, math.Ceil(load/perNode))) + 1
}

// PlaysPipeline sizes the plays pipeline at peak.
type PlaysPipeline struct {
	MeanPerSec float64 // playsPerDay / 86400
	PeakPerSec float64 // mean × peak factor
	Sinks      int64   // ceil(peak / sink rate), 0 without a sink rate
	Partitions int64   // max(sinks, ceil(peak / partition rate)), rounded up to a multiple of sinks
}

// Plays sizes the pipeline: mean = perDay/86400, peak = mean × factor,
// sinks = ceil(peak/sinkRate), partitions = ceil(peak/partitionRate) rounded
// up to a multiple of sinks (each sink reads the same number), at least
// sinks (a partition is read by one sink of the group).
func Plays(perDay, factor, sinkRate, partitionRate float64) PlaysPipeline {
	p := PlaysPipeline{MeanPerSec: perDay / 86400}
	p.PeakPerSec = p.MeanPerSec * factor
	p.Partitions = int64(math.Ceil(p.PeakPerSec / partitionRate))
	if sinkRate > 0 {
		p.Sinks = int64(math.Ceil(p.PeakPerSec / sinkRate))
		if p.Sinks > 0 {
			p.Partitions = max(p.Partitions, p.Sinks)
			p.Partitions = (p.Partitions + p.Sinks - 1) / p.Sinks * p.Sinks
		}
	}
	return p
}

// DedupBytes is the play-id store: perDay × retentionDays × entryBytes.
func DedupBytes(perDay, retentionDays, entryBytes float64) float64 {
	return perDay * retentionDays * entryBytes
}

// ZipfHead is the share of requests the k most popular of n items take
// under Zipf(s) with independent requests: H(k, s) / H(n, s), where
// H(m, s) = Σ_{i=1..m} i^-s. It is exact for small m and uses the
// Euler–Maclaurin tail beyond.
func ZipfHead(k, n float64, s float64) float64 {
	if k <= 0 {
		return 0
	}
	if k >= n {
		return 1
	}
	return harmonic(k, s) / harmonic(n, s)
}

// harmonic is H(m, s) for real m >= 1 (m is floored).
func harmonic(m, s float64) float64 {
	m = math.Floor(m)
	const exact = 10000
	if m <= exact {
		sum := 0.0
		for i := m; i >= 1; i-- { // small terms first
			sum += math.Pow(i, -s)
		}
		return sum
	}
	sum := harmonic(exact, s)
	// Σ_{i=a+1..m} i^-s ≈ ∫_a^m x^-s dx + (m^-s - a^-s)/2 - s(m^-s-1 - a^-s-1)/12
	a := float64(exact)
	var integral float64
	if math.Abs(s-1) < 1e-12 {
		integral = math.Log(m / a)
	} else {
		integral = (math.Pow(m, 1-s) - math.Pow(a, 1-s)) / (1 - s)
	}
	corr := (math.Pow(m, -s)-math.Pow(a, -s))/2 - s*(math.Pow(m, -s-1)-math.Pow(a, -s-1))/12
	return sum + integral + corr
}

// ZipfHeadInverse is the k whose head ZipfHead(k, n, s) reaches share (in
// (0, 1)), by bisection on log k.
func ZipfHeadInverse(share, n, s float64) float64 {
	if share <= 0 {
		return 0
	}
	if share >= 1 {
		return n
	}
	lo, hi := 0.0, math.Log(n)
	for range 100 {
		mid := (lo + hi) / 2
		if ZipfHead(math.Exp(mid), n, s) < share {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp(hi)
}

// ScaleCache maps a cache of fraction f of a catalog of n tracks onto a
// catalog of m tracks: the fraction g of m whose top g·m tracks take the
// same share of requests as the top f·n of n under Zipf(s). This is the
// planner's scaling rule (matched head mass): a cache holds about the
// most popular tracks it can, so two catalogs at the same skew should hit
// alike when their caches hold the same share of the requests.
func ScaleCache(f, n, m, s float64) float64 {
	share := ZipfHead(f*n, n, s)
	return ZipfHeadInverse(share, m, s) / m
}

// FitZipf fits the exponent s of counts (play counts, any order) by least
// squares of log(count) against log(rank) over the ranks with a count > 0.
// It returns NaN with fewer than two positive counts.
func FitZipf(counts []float64) float64 {
	var xs, ys []float64
	sorted := append([]float64(nil), counts...)
	sortDesc(sorted)
	for i, c := range sorted {
		if c > 0 {
			xs = append(xs, math.Log(float64(i+1)))
			ys = append(ys, math.Log(c))
		}
	}
	if len(xs) < 2 {
		return math.NaN()
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(xs))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return math.NaN()
	}
	return -sxy / sxx
}

func sortDesc(a []float64) { sort.Sort(sort.Reverse(sort.Float64Slice(a))) }
