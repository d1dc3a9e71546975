// Package rendezvous maps keys to nodes by weighted rendezvous (highest
// random weight) hashing, with the bounded-load rule of Mirrokni, Thorup and
// Zadimoghaddam ("Consistent Hashing with Bounded Loads", 2018).
//
// A Map is pure: no I/O, no goroutines, no clock, no locks. It is built once
// from a node list and never changes, so one Map can be shared by any number
// of goroutines; a membership change builds a new Map.
//
// Why rendezvous hashing rather than a ring of virtual nodes:
//
//   - Movement is minimal by construction. When a node leaves, exactly the
//     keys it owned move (each to its own second choice); when a node joins,
//     it takes exactly the keys for which it scores highest. A ring moves the
//     leaving node's arc share, which with v virtual nodes per node varies by
//     about 1/sqrt(v) around 1/N: meeting "at most 1.05 x 1/N moved" on a
//     ring needs thousands of points per node, and the memory and build time
//     that go with them.
//   - Balance is exact in expectation for any N, and weights are exact too
//     (the logarithmic method of Schindelhauer and Schomaker: node i scores
//     w_i / -ln(u_i), which it wins with probability w_i / sum(w)), where a
//     ring approximates weight by the number of virtual nodes.
//   - The failover order falls out: Successors is just the nodes sorted by
//     score, so every key's fallbacks are spread over all other nodes rather
//     than piling onto the ring neighbour.
//
// The price is O(N) work per look-up instead of O(log(vN)). A POP has a
// handful of edges and shields (N around 3 to 30), where N hash mixes cost
// less than a binary search over a large ring: Owner takes about 20 ns with
// 10 equal-weight nodes and about 70 ns with 10 weighted ones, without
// allocating (BenchmarkOwner). Past a few hundred nodes a ring would win;
// this package is not meant for that.
//
// Bounded load. OwnerBounded walks a key's preference order (Successors) and
// takes the first node whose in-flight load is below its capacity
// ceil(c * (L+1) * w_i / W), where L is the total in-flight load, W the total
// weight and c >= 1 the load factor. The paper walks the ring clockwise; a
// rendezvous preference order is the same construction with an independent
// random order per key, which spreads a hot node's overflow over all others
// instead of onto one neighbour. Because sum_i ceil(c*(L+1)*w_i/W) >= L+1 > L,
// some node is always below its capacity, so the walk always ends, and no
// node is ever handed work that takes it past its capacity.
package rendezvous

import (
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
)

// DefaultLoadFactor is the c of bounded-load hashing used when a caller
// passes c < 1: no node takes more than 1.25 times its fair share of the
// in-flight work. Smaller values balance better but move more keys away from
// their owners (the paper: about 1/(c-1)^2 probes in the worst case).
const DefaultLoadFactor = 1.25

// Node is one member of a Map.
type Node struct {
	// ID names the node; it must be unique within a Map. Scores derive from
	// a hash of the ID, so a node keeps its keys across Maps as long as its
	// ID stays the same, whatever its index.
	ID string
	// Weight is the node's relative capacity: a node of weight 2 owns twice
	// the keys of a node of weight 1 on average. Values <= 0 mean 1.
	Weight float64
}

// Map is an immutable rendezvous hash over a set of nodes. The zero Map and
// a Map with no nodes own nothing: Owner returns -1.
type Map struct {
	nodes    []Node
	seeds    []uint64  // per-node hash seed, xxhash of the ID
	weights  []float64 // normalised: > 0
	total    float64   // sum of weights
	weighted bool      // some weights differ: use the logarithmic method
}

// New builds a Map over nodes, in the given order: indexes returned by the
// Map's methods are indexes into nodes. It copies nodes. It panics if two
// nodes share an ID, which is a programming error (membership names are
// unique).
func New(nodes []Node) *Map {
	m := &Map{
		nodes:   make([]Node, len(nodes)),
		seeds:   make([]uint64, len(nodes)),
		weights: make([]float64, len(nodes)),
	}
	copy(m.nodes, nodes)
	seen := make(map[string]struct{}, len(nodes))
	for i, n := range nodes {
		if _, dup := seen[n.ID]; dup {
			panic(fmt.Sprintf("rendezvous: duplicate node id %q", n.ID))
		}
		seen[n.ID] = struct{}{}
		w := n.Weight
		if !(w > 0) || math.IsInf(w, 1) { // also catches NaN
			w = 1
		}
		m.nodes[i].Weight = w
		m.weights[i] = w
		m.total += w
		if w != m.weights[0] {
			m.weighted = true
		}
		m.seeds[i] = xxhash.Sum64String(n.ID)
	}
	return m
}

// Len is the number of nodes.
func (m *Map) Len() int { return len(m.nodes) }

// Node returns node i as given to New (with its effective weight).
func (m *Map) Node(i int) Node { return m.nodes[i] }

// Owner returns the index of the node that owns key, or -1 if the Map is
// empty. It does not allocate (with unequal weights, up to 32 nodes).
func (m *Map) Owner(key uint64) int {
	best := -1
	var bestScore uint64
	if !m.weighted {
		for i, s := range m.seeds {
			if sc := mix(key ^ s); best < 0 || sc > bestScore {
				best, bestScore = i, sc
			}
		}
		return best
	}
	return m.ownerWeighted(key)
}

// ownerWeighted is Owner for unequal weights. The score w / -ln(u) needs a
// logarithm, the expensive part, so it brackets every score first with
// cheap bounds from the series -ln(1-x) = x + x^2/2 + x^3/3 + ... (x = 1-u):
//
//	x + x^2/2 <= -ln(u) <= x/u,  so  w*u/x <= score <= w/(x + x^2/2)
//
// Only nodes whose upper bound reaches the best lower bound can win; the
// winner's u is near 1, where the bounds are tight, so usually one or two
// logarithms are taken instead of N. A small margin absorbs rounding:
// a node skipped never truly beats the best, so the result is the plain
// argmax (ties to the lower index), as the tests check against a
// reference.
func (m *Map) ownerWeighted(key uint64) int {
	var stack [32]float64
	us := stack[:0]
	if len(m.seeds) > len(stack) {
		us = make([]float64, 0, len(m.seeds))
	}
	// Pass 1: the best lower bound w*u/x, kept as a fraction to avoid
	// dividing.
	num, den := 0.0, 1.0
	for i, s := range m.seeds {
		u := unit(mix(key ^ s))
		us = append(us, u)
		if n, d := m.weights[i]*u, 1-u; n*den > num*d {
			num, den = n, d
		}
	}
	// Pass 2: exact scores for the nodes that can reach it.
	cut := num * (1 - 1e-9)
	best, bestScore := -1, 0.0
	for i, u := range us {
		x := 1 - u
		if m.weights[i]*den < cut*(x+x*x/2) {
			continue
		}
		if sc := m.weights[i] / -math.Log(u); best < 0 || sc > bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}

// Successors writes all node indexes into dst[:0] in key's preference order
// (the owner first, then the node that would own key if the owner were gone,
// and so on) and returns the slice. It allocates only when cap(dst) < Len().
// Callers that want the first k nodes slice the result.
func (m *Map) Successors(key uint64, dst []int) []int {
	dst = dst[:0]
	n := len(m.nodes)
	var stack [32]uint64
	scores := stack[:0]
	if n > len(stack) {
		scores = make([]uint64, 0, n)
	}
	// Insertion sort, descending by score: N is small, and it keeps the
	// scores and indexes in step without an allocation.
	for i := 0; i < n; i++ {
		sc := m.score(i, key)
		j := len(dst)
		dst = append(dst, i)
		scores = append(scores, sc)
		for j > 0 && scores[j-1] < sc {
			dst[j], scores[j] = dst[j-1], scores[j-1]
			j--
		}
		dst[j], scores[j] = i, sc
	}
	return dst
}

// OwnerBounded returns the node that takes key under bounded load: the first
// node in key's preference order whose in-flight load, as reported by load,
// is below its capacity Capacity(total, i, c), where total is the sum of load
// over all nodes. c < 1 means DefaultLoadFactor. It returns -1 if the Map is
// empty. load is called once per node (to sum the total) plus once per node
// examined; it must not return negative values. It does not allocate with up
// to 32 nodes.
//
// The caller counts the key's work against the returned node (increments its
// load) until the work is done; no node is then above its capacity.
func (m *Map) OwnerBounded(key uint64, load func(i int) int64, c float64) int {
	n := len(m.nodes)
	if n == 0 {
		return -1
	}
	var total int64
	for i := 0; i < n; i++ {
		total += load(i)
	}
	if o := m.Owner(key); load(o) < m.Capacity(total, o, c) {
		return o
	}
	var stack [32]int
	for _, i := range m.Successors(key, stack[:0]) {
		if load(i) < m.Capacity(total, i, c) {
			return i
		}
	}
	// Unreachable when load is consistent (see the package comment); a
	// load func that changes under us can get here. Fall back to the owner
	// rather than fail the request.
	return m.Owner(key)
}

// Capacity is the most in-flight work node i may hold, counting one more
// piece, when total pieces are in flight over the whole Map:
// ceil(c * (total+1) * w_i / W). c < 1 means DefaultLoadFactor.
func (m *Map) Capacity(total int64, i int, c float64) int64 {
	if c < 1 || math.IsNaN(c) {
		c = DefaultLoadFactor
	}
	return int64(math.Ceil(c * float64(total+1) * m.weights[i] / m.total))
}

// score is node i's rendezvous score for key; higher wins. Scores of
// different nodes compare as unsigned integers in both modes.
func (m *Map) score(i int, key uint64) uint64 {
	h := mix(key ^ m.seeds[i])
	if !m.weighted {
		return h
	}
	// The bit patterns of positive float64s order like their values.
	return math.Float64bits(m.weights[i] / -math.Log(unit(h)))
}

// unit maps a hash to a float64 uniform in (0,1), from its top 53 bits.
func unit(h uint64) float64 {
	return (float64(h>>11) + 0.5) * (1.0 / (1 << 53))
}

// mix is the splitmix64 finaliser: a bijection with full avalanche, so
// key^seed for different seeds gives independent-looking scores.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
