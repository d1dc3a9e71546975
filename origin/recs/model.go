package recs

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/mat"

	"github.com/musiccdn/cdn/origin/recs/als"
	"github.com/musiccdn/cdn/origin/recs/content"
	"github.com/musiccdn/cdn/origin/recs/parallel"
)

// model is one immutable trained state. Everything a request needs is
// here, so swapping the pointer swaps all of it at once.
type model struct {
	gen     uint64
	trained time.Time
	k       int

	tracks   []string
	trackIdx map[string]int32
	// placed[i] is false for a track with neither plays nor an embedding:
	// it has no factors and is never a candidate.
	placed      []bool
	coldCount   int // tracks placed from their embedding alone
	unplaceable int

	itemF []float32 // raw item factors, for user scores
	itemN []float32 // unit-length item factors, for cosine neighbours
	// neigh holds, for track i, up to K neighbour indices best first at
	// neigh[i*K:(i+1)*K], padded with -1.
	neigh  []int32
	neighK int
	// exactNeighbours is false when neigh came from the approximate
	// index, whose lists can be short even when more tracks exist.
	exactNeighbours bool
	popular         []int32 // placed tracks by total plays, most first (capped)
	users           []string
	userIdx         map[string]int32
	userF           []float32
	userPlayed      *als.Matrix // users × tracks

	// How long the stages of build took, for the log.
	alsTook, coldTook, neighTook time.Duration
}

// popularKept caps the popularity fallback list.
const popularKept = 1000

// build trains ALS on in, places cold tracks and precomputes neighbours.
// It is pure computation over in.
func build(ctx context.Context, cfg Config, in *input) (*model, error) {
	if len(in.tracks) == 0 {
		return nil, errors.New("empty catalog")
	}
	t0 := time.Now()
	fm, err := als.Train(ctx, cfg.als(), in.plays)
	if err != nil {
		return nil, err
	}
	alsTook := time.Since(t0)
	k := cfg.Factors
	m := &model{
		k:          k,
		tracks:     in.tracks,
		trackIdx:   make(map[string]int32, len(in.tracks)),
		placed:     make([]bool, len(in.tracks)),
		itemF:      fm.ItemFactors,
		users:      in.users,
		userIdx:    make(map[string]int32, len(in.users)),
		userF:      fm.UserFactors,
		userPlayed: in.plays,
		alsTook:    alsTook,
	}
	for i, id := range in.tracks {
		m.trackIdx[id] = int32(i)
	}
	for u, id := range in.users {
		m.userIdx[id] = int32(u)
	}
	totals := make([]float64, len(in.tracks))
	for u := 0; u < in.plays.Rows; u++ {
		cols, vals := in.plays.Row(u)
		for j, c := range cols {
			totals[c] += float64(vals[j])
		}
	}
	var cold []int
	for i := range in.tracks {
		if totals[i] > 0 {
			m.placed[i] = true
		} else {
			cold = append(cold, i)
		}
	}
	t0 = time.Now()
	if len(cold) > 0 && in.embeddings != nil {
		m.coldCount = placeCold(cfg, in.embeddings, m.itemF, k, m.placed, cold)
	}
	m.coldTook = time.Since(t0)
	for _, i := range cold {
		if !m.placed[i] {
			m.unplaceable++
		}
	}
	for i := range in.tracks {
		if m.placed[i] {
			m.popular = append(m.popular, int32(i))
		}
	}
	slices.SortStableFunc(m.popular, func(a, b int32) int { return cmp.Compare(totals[b], totals[a]) })
	m.popular = m.popular[:min(len(m.popular), popularKept)]

	m.itemN = make([]float32, len(m.itemF))
	for i := range in.tracks {
		src := m.itemF[i*k : (i+1)*k]
		var n float64
		for _, v := range src {
			n += float64(v) * float64(v)
		}
		if n == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(n))
		for j, v := range src {
			m.itemN[i*k+j] = v * inv
		}
	}
	t0 = time.Now()
	m.neighK = min(cfg.NeighboursK, max(1, len(in.tracks)-1))
	m.exactNeighbours = len(in.tracks) <= cfg.ExactNeighboursMax
	if m.exactNeighbours {
		m.neigh, err = neighbours(ctx, m.itemN, m.placed, k, m.neighK, cfg.Workers)
	} else {
		m.neigh, err = ivfNeighbours(ctx, m.itemN, m.placed, k, m.neighK, cfg.NeighbourProbes, cfg.Workers, cfg.Seed)
	}
	if err != nil {
		return nil, err
	}
	m.neighTook = time.Since(t0)
	return m, nil
}

// placeCold fits a ridge regression from standardized embeddings onto the
// item factors of tracks that have both, and writes predicted factors for
// the cold tracks that have an embedding. It returns how many it placed.
func placeCold(cfg Config, emb [][]float32, itemF []float32, k int, placed []bool, cold []int) int {
	const d = content.Dim
	var warm []int
	for i, e := range emb {
		if placed[i] && e != nil {
			warm = append(warm, i)
		}
	}
	if len(warm) < cfg.MinWarmTracks {
		return 0
	}
	// Standardize each feature over the warm tracks.
	mean := make([]float64, d)
	std := make([]float64, d)
	for _, i := range warm {
		for j, v := range emb[i] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(len(warm))
	}
	for _, i := range warm {
		for j, v := range emb[i] {
			x := float64(v) - mean[j]
			std[j] += x * x
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / float64(len(warm)))
		if std[j] < 1e-9 {
			std[j] = 1
		}
	}
	row := func(e []float32, dst []float64) {
		for j, v := range e {
			dst[j] = (float64(v) - mean[j]) / std[j]
		}
		dst[d] = 1 // bias
	}
	// Normal equations (EᵀE + μI) W = EᵀY, with E warm×(d+1), Y warm×k.
	e := mat.NewDense(len(warm), d+1, nil)
	y := mat.NewDense(len(warm), k, nil)
	for r, i := range warm {
		row(emb[i], e.RawRowView(r))
		for j := 0; j < k; j++ {
			y.Set(r, j, float64(itemF[i*k+j]))
		}
	}
	var ete mat.SymDense
	ete.SymOuterK(1, e.T())
	for j := 0; j < d; j++ { // the bias is not penalized
		ete.SetSym(j, j, ete.At(j, j)+cfg.ColdStartRidge)
	}
	ete.SetSym(d, d, ete.At(d, d)+1e-9)
	var ety mat.Dense
	ety.Mul(e.T(), y)
	var ch mat.Cholesky
	if !ch.Factorize(&ete) {
		return 0
	}
	var w mat.Dense
	if err := ch.SolveTo(&w, &ety); err != nil {
		return 0
	}
	x := make([]float64, d+1)
	n := 0
	for _, i := range cold {
		if emb[i] == nil {
			continue
		}
		row(emb[i], x)
		xv := mat.NewVecDense(d+1, x)
		for j := 0; j < k; j++ {
			itemF[i*k+j] = float32(mat.Dot(xv, w.ColView(j)))
		}
		placed[i] = true
		n++
	}
	return n
}

// neighbourBlock is how many query tracks one matrix product scores at
// once; the score block is neighbourBlock × tracks float32s per worker.
const neighbourBlock = 64

// neighbours returns, for every placed track, its K most cosine-similar
// placed tracks (itself excluded), by blocked matrix products over unit
// vectors.
func neighbours(ctx context.Context, unit []float32, placed []bool, k, kk, workers int) ([]int32, error) {
	n := len(placed)
	out := make([]int32, n*kk)
	for i := range out {
		out[i] = -1
	}
	err := parallel.For(ctx, n, neighbourBlock, workers, func() func(lo, hi int) {
		var impl gonum.Implementation
		scores := make([]float32, neighbourBlock*n)
		h := &topK{}
		return func(lo, hi int) {
			b := hi - lo
			impl.Sgemm(blas.NoTrans, blas.Trans, b, n, k, 1, unit[lo*k:hi*k], k, unit, k, 0, scores, n)
			for q := 0; q < b; q++ {
				qi := lo + q
				if !placed[qi] {
					continue
				}
				h.reset(kk)
				row := scores[q*n : (q+1)*n]
				for c, s := range row {
					if c != qi && placed[c] {
						h.offer(int32(c), s)
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

// next returns up to n neighbours of track i that allow accepts. When the
// precomputed list runs out (rights filtering) it scans every track.
func (m *model) next(i int32, n int, allow func(string) bool) []string {
	out := make([]string, 0, n)
	if n <= 0 {
		return out
	}
	if !m.placed[i] {
		return m.fromList(m.popular, i, n, allow, out)
	}
	row := m.neigh[int(i)*m.neighK : (int(i)+1)*m.neighK]
	full := row[len(row)-1] >= 0 // the list was not cut short by catalog size
	for _, c := range row {
		if c < 0 {
			break
		}
		if allow(m.tracks[c]) {
			out = append(out, m.tracks[c])
			if len(out) == n {
				return out
			}
		}
	}
	if !full && m.exactNeighbours {
		return out // every other placed track was already considered
	}
	// Rare: rights filtered out most neighbours. Scan every placed track,
	// keeping the best n that allow accepts in a topK heap: per request
	// O(tracks) dot products but O(n) memory and no sort of the catalog,
	// and allow is asked only of tracks that would enter the top n.
	return m.bestAllowed(i, n, allow, out[:0])
}

// bestAllowed returns the n placed tracks most similar to i that allow
// accepts, best first (ties by index), appended to out.
func (m *model) bestAllowed(i int32, n int, allow func(string) bool, out []string) []string {
	k := m.k
	q := m.itemN[int(i)*k : (int(i)+1)*k]
	var impl gonum.Implementation
	h := &topK{}
	h.reset(n)
	for c := range m.tracks {
		if c == int(i) || !m.placed[c] {
			continue
		}
		s := impl.Sdot(k, q, 1, m.itemN[c*k:(c+1)*k], 1)
		if h.Len() == n && !h.better(int32(c), s, 0) {
			continue // would not enter the top n: no rights question
		}
		if allow(m.tracks[c]) {
			h.offer(int32(c), s)
		}
	}
	ranked := make([]int32, h.Len())
	h.drain(ranked)
	for _, c := range ranked {
		out = append(out, m.tracks[c])
	}
	return out
}

func (m *model) fromList(list []int32, self int32, n int, allow func(string) bool, out []string) []string {
	have := make(map[string]bool, len(out))
	for _, id := range out {
		have[id] = true
	}
	for _, c := range list {
		if c == self || have[m.tracks[c]] || !allow(m.tracks[c]) {
			continue
		}
		out = append(out, m.tracks[c])
		if len(out) == n {
			break
		}
	}
	return out
}

// forUser returns the n placed tracks user u has not played with the
// highest scores xᵤᵀyᵢ that allow accepts (nil allow accepts all).
func (m *model) forUser(u int32, n int, allow func(string) bool) []string {
	return m.rankUser(u, n, nil, allow)
}

// rankUser ranks the candidate tracks (nil: all placed tracks) for u,
// excluding what u played; it is also what evaluation uses.
func (m *model) rankUser(u int32, n int, candidates []int32, allow func(string) bool) []string {
	k := m.k
	x := m.userF[int(u)*k : (int(u)+1)*k]
	played, _ := m.userPlayed.Row(int(u))
	var impl gonum.Implementation
	h := &topK{}
	// Over-fetch so that rights filtering rarely leaves fewer than n.
	want := n
	if allow != nil {
		want = 4*n + 16
	}
	h.reset(want)
	score := func(c int) {
		if !m.placed[c] {
			return
		}
		if _, hit := slices.BinarySearch(played, int32(c)); hit {
			return
		}
		h.offer(int32(c), impl.Sdot(k, x, 1, m.itemF[c*k:(c+1)*k], 1))
	}
	if candidates == nil {
		for c := range m.tracks {
			score(c)
		}
	} else {
		for _, c := range candidates {
			score(int(c))
		}
	}
	full := h.Len() == want // more candidates may remain beyond the heap
	ranked := make([]int32, h.Len())
	h.drain(ranked)
	out := make([]string, 0, n)
	for _, c := range ranked {
		if allow == nil || allow(m.tracks[c]) {
			out = append(out, m.tracks[c])
			if len(out) == n {
				return out
			}
		}
	}
	if allow == nil || !full {
		return out
	}
	// Rights removed too many of the best: rank again, asking rights
	// about every candidate (slow, but exact).
	h.reset(n)
	filtered := func(c int) {
		if allow(m.tracks[c]) {
			score(c)
		}
	}
	if candidates == nil {
		for c := range m.tracks {
			filtered(c)
		}
	} else {
		for _, c := range candidates {
			filtered(int(c))
		}
	}
	ranked = ranked[:h.Len()]
	h.drain(ranked)
	out = out[:0]
	for _, c := range ranked {
		out = append(out, m.tracks[c])
	}
	return out
}

// topK keeps the k highest-scoring ids seen, as a min-heap on score (ties
// broken towards the lower id, so results are deterministic).
type topK struct {
	k     int
	ids   []int32
	score []float32
}

func (h *topK) reset(k int) {
	h.k = k
	h.ids = h.ids[:0]
	h.score = h.score[:0]
}

func (h *topK) offer(id int32, s float32) {
	if len(h.ids) < h.k {
		heap.Push(h, entry{id, s})
		return
	}
	if h.k == 0 || !h.better(id, s, 0) {
		return
	}
	h.ids[0], h.score[0] = id, s
	heap.Fix(h, 0)
}

// better reports whether (id, s) ranks above heap element j.
func (h *topK) better(id int32, s float32, j int) bool {
	return s > h.score[j] || s == h.score[j] && id < h.ids[j]
}

// drain writes the kept ids best first into dst (len >= Len) and empties
// the heap.
func (h *topK) drain(dst []int32) {
	for n := h.Len(); n > 0; n-- {
		e := heap.Pop(h).(entry)
		dst[n-1] = e.id
	}
}

type entry struct {
	id int32
	s  float32
}

func (h *topK) Len() int { return len(h.ids) }
func (h *topK) Less(i, j int) bool {
	// A min-heap: the worst kept entry sits at the root.
	return h.score[i] < h.score[j] || h.score[i] == h.score[j] && h.ids[i] > h.ids[j]
}
func (h *topK) Swap(i, j int) {
	h.ids[i], h.ids[j] = h.ids[j], h.ids[i]
	h.score[i], h.score[j] = h.score[j], h.score[i]
}
func (h *topK) Push(x any) {
	e := x.(entry)
	h.ids = append(h.ids, e.id)
	h.score = append(h.score, e.s)
}
func (h *topK) Pop() any {
	n := len(h.ids) - 1
	e := entry{h.ids[n], h.score[n]}
	h.ids, h.score = h.ids[:n], h.score[:n]
	return e
}
