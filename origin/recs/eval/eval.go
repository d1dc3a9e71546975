// Package eval scores ranked recommendation lists against held-out
// relevant items with the usual top-k measures: precision, average
// precision (for MAP) and NDCG, all with binary relevance.
package eval

import "math"

// Precision is the fraction of the first k ranked items that are relevant
// (k in the denominator even when fewer were ranked).
func Precision[T comparable](ranked []T, relevant map[T]bool, k int) float64 {
	if k <= 0 {
		return 0
	}
	hits := 0
	for _, x := range ranked[:min(k, len(ranked))] {
		if relevant[x] {
			hits++
		}
	}
	return float64(hits) / float64(k)
}

// AveragePrecision is AP@k: the mean of the precision at each rank that
// holds a relevant item, divided by min(k, |relevant|). Its mean over
// users is MAP@k.
func AveragePrecision[T comparable](ranked []T, relevant map[T]bool, k int) float64 {
	if k <= 0 || len(relevant) == 0 {
		return 0
	}
	hits := 0
	var sum float64
	for i, x := range ranked[:min(k, len(ranked))] {
		if relevant[x] {
			hits++
			sum += float64(hits) / float64(i+1)
		}
	}
	return sum / float64(min(k, len(relevant)))
}

// NDCG is NDCG@k: discounted cumulative gain of the first k items over
// that of an ideal ranking, with gain 1 per relevant item and discount
// 1/log2(rank+1).
func NDCG[T comparable](ranked []T, relevant map[T]bool, k int) float64 {
	if k <= 0 || len(relevant) == 0 {
		return 0
	}
	var dcg, ideal float64
	for i, x := range ranked[:min(k, len(ranked))] {
		if relevant[x] {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	for i := 0; i < min(k, len(relevant)); i++ {
		ideal += 1 / math.Log2(float64(i+2))
	}
	return dcg / ideal
}

// Mean accumulates the three measures over users.
type Mean struct {
	K                          int
	N                          int
	Precision, MAP, NDCG, Hits float64
}

// Add scores one user's ranking.
func (m *Mean) Add(ranked []string, relevant map[string]bool) {
	m.N++
	p := Precision(ranked, relevant, m.K)
	m.Precision += p
	m.MAP += AveragePrecision(ranked, relevant, m.K)
	m.NDCG += NDCG(ranked, relevant, m.K)
	if p > 0 {
		m.Hits++
	}
}

// Result returns the means: precision@K, MAP@K, NDCG@K and the hit rate
// (fraction of users with at least one relevant item in the top K).
func (m *Mean) Result() (precision, mapk, ndcg, hitRate float64) {
	if m.N == 0 {
		return 0, 0, 0, 0
	}
	n := float64(m.N)
	return m.Precision / n, m.MAP / n, m.NDCG / n, m.Hits / n
}
