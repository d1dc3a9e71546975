package recs

import (
	"context"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/musiccdn/cdn/origin/recs/parallel"
)

// Exact neighbours cost tracks² × factors; past a few tens of thousands
// of tracks that dominates training. ivfNeighbours instead partitions the
// unit vectors by spherical k-means into about √tracks lists and, for each
// track, scans only the lists whose centroids are most similar to it (an
// inverted-file index, as in FAISS's IndexIVFFlat). The result is
// approximate: a true neighbour in an unprobed list is missed.

// kmeansIterations is the number of Lloyd steps; the lists need only be
// good enough to put near vectors together, not converged.
const kmeansIterations = 8

func ivfNeighbours(ctx context.Context, unit []float32, placed []bool, k, kk, probes, workers int, seed uint64) ([]int32, error) {
	n := len(placed)
	var ids []int32 // placed tracks
	for i, p := range placed {
		if p {
			ids = append(ids, int32(i))
		}
	}
	out := make([]int32, n*kk)
	for i := range out {
		out[i] = -1
	}
	if len(ids) == 0 {
		return out, nil
	}
	nc := max(1, int(math.Sqrt(float64(len(ids)))))
	probes = min(probes, nc)
	cent, assign, err := sphericalKMeans(ctx, unit, ids, k, nc, workers, seed)
	if err != nil {
		return nil, err
	}
	lists := make([][]int32, nc)
	for j, c := range assign {
		lists[c] = append(lists[c], ids[j])
	}

	// Queries are claimed a block at a time: one costs a centroid scan and
	// probes lists, far more than the claim.
	err = parallel.For(ctx, len(ids), ivfBlock, workers, func() func(lo, hi int) {
		var impl gonum.Implementation
		csc := make([]float32, nc)
		probe := &topK{}
		h := &topK{}
		chosen := make([]int32, probes)
		return func(lo, hi int) {
			for _, id := range ids[lo:hi] {
				qi := int(id)
				q := unit[qi*k : (qi+1)*k]
				impl.Sgemv(blas.NoTrans, nc, k, 1, cent, k, q, 1, 0, csc, 1)
				probe.reset(probes)
				for c, s := range csc {
					probe.offer(int32(c), s)
				}
				probe.drain(chosen)
				h.reset(kk)
				for _, c := range chosen {
					for _, t := range lists[c] {
						if int(t) != qi {
							h.offer(t, impl.Sdot(k, q, 1, unit[int(t)*k:(int(t)+1)*k], 1))
						}
					}
				}
				h.drain(out[qi*kk : (qi+1)*kk])
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ivfBlock is how many queries a worker claims at once.
const ivfBlock = 16

// sphericalKMeans clusters the unit vectors of ids into nc groups by
// cosine similarity. It returns the nc×k row-major unit centroids and each
// id's group.
func sphericalKMeans(ctx context.Context, unit []float32, ids []int32, k, nc, workers int, seed uint64) ([]float32, []int32, error) {
	r := rand.New(rand.NewPCG(seed, 4))
	cent := make([]float32, nc*k)
	for c, j := range r.Perm(len(ids))[:nc] {
		copy(cent[c*k:(c+1)*k], unit[int(ids[j])*k:(int(ids[j])+1)*k])
	}
	assign := make([]int32, len(ids))
	const block = 256
	for it := 0; it < kmeansIterations; it++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		// Assign: each vector to its most similar centroid, blockwise
		// products in parallel.
		err := parallel.For(ctx, len(ids), block, workers, func() func(lo, hi int) {
			var impl gonum.Implementation
			buf := make([]float32, block*k)
			scores := make([]float32, block*nc)
			return func(lo, hi int) {
				b := hi - lo
				for q := 0; q < b; q++ {
					i := int(ids[lo+q])
					copy(buf[q*k:(q+1)*k], unit[i*k:(i+1)*k])
				}
				impl.Sgemm(blas.NoTrans, blas.Trans, b, nc, k, 1, buf, k, cent, k, 0, scores, nc)
				for q := 0; q < b; q++ {
					best, bestS := 0, float32(math.Inf(-1))
					for c, s := range scores[q*nc : (q+1)*nc] {
						if s > bestS {
							best, bestS = c, s
						}
					}
					assign[lo+q] = int32(best)
				}
			}
		})
		if err != nil {
			return nil, nil, err
		}
		// Update: centroid = normalized sum of its members; an empty
		// group keeps its old centroid.
		sum := make([]float64, nc*k)
		for j, c := range assign {
			i := int(ids[j])
			for d, v := range unit[i*k : (i+1)*k] {
				sum[int(c)*k+d] += float64(v)
			}
		}
		for c := 0; c < nc; c++ {
			var norm float64
			for _, v := range sum[c*k : (c+1)*k] {
				norm += v * v
			}
			if norm == 0 {
				continue
			}
			inv := 1 / math.Sqrt(norm)
			for d := 0; d < k; d++ {
				cent[c*k+d] = float32(sum[c*k+d] * inv)
			}
		}
	}
	return cent, assign, nil
}
