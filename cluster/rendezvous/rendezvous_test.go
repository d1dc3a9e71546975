package rendezvous

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// refScores is the deliberately simple reference for weighted maps: every
// node's score w / -ln(u) computed straight from the definition as a float,
// with no shared fast path.
func refScores(nodes []Node, key uint64) []float64 {
	out := make([]float64, len(nodes))
	for i, n := range nodes {
		h := mix(key ^ xxhash.Sum64String(n.ID))
		u := (float64(h>>11) + 0.5) / math.Exp2(53)
		out[i] = effWeight(n.Weight) / -math.Log(u)
	}
	return out
}

func effWeight(w float64) float64 {
	if !(w > 0) || math.IsInf(w, 1) {
		return 1
	}
	return w
}

// refOrder sorts node indexes by reference score, highest first, ties to the
// lower index. Equal-weight scores are compared as exact uint64s.
func refOrder(nodes []Node, key uint64) []int {
	sc := refScores(nodes, key)
	raw := make([]uint64, len(nodes))
	for i, n := range nodes {
		raw[i] = mix(key ^ xxhash.Sum64String(n.ID))
	}
	weighted := false
	for _, n := range nodes {
		if effWeight(n.Weight) != effWeight(nodes[0].Weight) {
			weighted = true
		}
	}
	idx := make([]int, len(nodes))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		if !weighted {
			return raw[idx[a]] > raw[idx[b]]
		}
		return sc[idx[a]] > sc[idx[b]]
	})
	return idx
}

// randomNodes makes n nodes: equal weights (mode 0), small integer
// weights (1), or weights spread over four orders of magnitude (2).
func randomNodes(r *rand.Rand, n int, mode int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i].ID = fmt.Sprintf("node-%d-%d", i, r.IntN(1000))
		switch mode {
		case 1:
			nodes[i].Weight = float64(1 + r.IntN(4))
		case 2:
			nodes[i].Weight = math.Pow(10, 4*r.Float64()-2)
		}
	}
	return nodes
}

func TestMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(40) // past 32, the paths that allocate
		nodes := randomNodes(r, n, trial%3)
		m := New(nodes)
		var buf []int
		for k := 0; k < 200; k++ {
			key := r.Uint64()
			want := refOrder(nodes, key)
			if got := m.Owner(key); got != want[0] {
				t.Fatalf("trial %d: Owner(%#x) = %d, want %d (nodes %v)", trial, key, got, want[0], nodes)
			}
			buf = m.Successors(key, buf)
			if fmt.Sprint(buf) != fmt.Sprint(want) {
				t.Fatalf("trial %d: Successors(%#x) = %v, want %v", trial, key, buf, want)
			}
		}
	}
}

func TestEmptyAndSingle(t *testing.T) {
	var empty Map
	if got := empty.Owner(1); got != -1 {
		t.Errorf("zero Map Owner(1) = %d, want -1", got)
	}
	if got := New(nil).OwnerBounded(1, func(int) int64 { return 0 }, 0); got != -1 {
		t.Errorf("empty OwnerBounded = %d, want -1", got)
	}
	one := New([]Node{{ID: "a"}})
	for k := uint64(0); k < 100; k++ {
		if got := one.Owner(k); got != 0 {
			t.Fatalf("single-node Owner(%d) = %d, want 0", k, got)
		}
	}
}

func TestDuplicateIDPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New with duplicate ids did not panic")
		}
	}()
	New([]Node{{ID: "a"}, {ID: "a"}})
}

// trackKeys are the keys the edge uses: xxhash of the track id.
func trackKeys(n int) []uint64 {
	keys := make([]uint64, n)
	for i := range keys {
		keys[i] = xxhash.Sum64String("t" + strconv.Itoa(i))
	}
	return keys
}

func namedNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("edge-%02d", i)}
	}
	return nodes
}

// movedFraction is the share of keys whose owner (by ID) differs.
func movedFraction(a, b *Map, keys []uint64) float64 {
	moved := 0
	for _, k := range keys {
		if a.Node(a.Owner(k)).ID != b.Node(b.Owner(k)).ID {
			moved++
		}
	}
	return float64(moved) / float64(len(keys))
}

func TestMovementOnJoin(t *testing.T) {
	keys := trackKeys(100_000)
	for _, n := range []int{2, 3, 5, 10} {
		before := New(namedNodes(n))
		after := New(namedNodes(n + 1))
		got := movedFraction(before, after, keys)
		// Ideal is 1/N of the keys, N counting the new node; the
		// issue's bound is 1.3/N (taking the stricter N, after the join).
		limit := 1.3 / float64(n+1)
		t.Logf("join %d->%d: moved %.4f of keys (ideal 1/N = %.4f, limit 1.3/N = %.4f)", n, n+1, got, 1/float64(n+1), limit)
		if got > limit {
			t.Errorf("join %d->%d moved %.4f of keys, want <= %.4f", n, n+1, got, limit)
		}
	}
}

func TestMovementOnLeave(t *testing.T) {
	keys := trackKeys(100_000)
	const n = 10
	full := namedNodes(n)
	before := New(full)
	worst := 0.0
	for leave := 0; leave < n; leave++ {
		rest := append(append([]Node(nil), full[:leave]...), full[leave+1:]...)
		after := New(rest)
		got := movedFraction(before, after, keys)
		worst = max(worst, got)
		// Only the leaver's keys may move.
		for _, k := range keys[:10_000] {
			if o := before.Node(before.Owner(k)).ID; o != full[leave].ID && after.Node(after.Owner(k)).ID != o {
				t.Fatalf("key %#x moved from surviving node %s", k, o)
			}
		}
	}
	ratio := worst / (1.0 / n)
	t.Logf("leave 1 of %d: worst moved fraction %.4f = %.3f x (1/N)", n, worst, ratio)
	if ratio > 1.05 {
		t.Errorf("leave 1 of %d moved %.4f of keys = %.3f x 1/N, want <= 1.05", n, worst, ratio)
	}
}

func TestWeightedShares(t *testing.T) {
	nodes := []Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 2}, {ID: "c", Weight: 3}, {ID: "d", Weight: 4}}
	m := New(nodes)
	keys := trackKeys(100_000)
	counts := make([]int, len(nodes))
	for _, k := range keys {
		counts[m.Owner(k)]++
	}
	for i, n := range nodes {
		want := n.Weight / 10
		got := float64(counts[i]) / float64(len(keys))
		if math.Abs(got-want) > 0.01 {
			t.Errorf("share of %s (weight %v) = %.4f, want %.4f +- 0.01", n.ID, n.Weight, got, want)
		}
	}
}

func TestBoundedLoadNeverAboveCapacity(t *testing.T) {
	for _, tc := range []struct {
		name    string
		nodes   []Node
		c       float64
		hotKeys int // keys drawn from a tiny set, to force overflow
	}{
		{"equal c=1.25", namedNodes(5), 1.25, 3},
		{"equal c=1", namedNodes(7), 1, 2},
		{"equal default", namedNodes(10), 0, 1},
		{"weighted c=1.1", []Node{{ID: "a", Weight: 1}, {ID: "b", Weight: 3}, {ID: "c", Weight: 2}}, 1.1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.nodes)
			r := rand.New(rand.NewPCG(3, 4))
			loads := make([]int64, m.Len())
			loadOf := func(i int) int64 { return loads[i] }
			type job struct{ node int }
			var inflight []job
			notOwner := 0
			for step := 0; step < 50_000; step++ {
				// Arrivals outnumber departures until ~200 in flight.
				if len(inflight) > 0 && (len(inflight) > 200 || r.IntN(3) == 0) {
					j := r.IntN(len(inflight))
					loads[inflight[j].node]--
					inflight[j] = inflight[len(inflight)-1]
					inflight = inflight[:len(inflight)-1]
					continue
				}
				key := uint64(r.IntN(tc.hotKeys))
				var total int64
				for _, l := range loads {
					total += l
				}
				i := m.OwnerBounded(key, loadOf, tc.c)
				if i != m.Owner(key) {
					notOwner++
				}
				// Reference: the first node in preference order under
				// its capacity, capacity computed exactly.
				want := -1
				for _, s := range refOrder(tc.nodes, key) {
					if loads[s] < refCapacity(tc.nodes, s, total, tc.c) {
						want = s
						break
					}
				}
				if i != want {
					t.Fatalf("step %d: OwnerBounded(%d) = %d, want %d (loads %v)", step, key, i, want, loads)
				}
				loads[i]++
				inflight = append(inflight, job{i})
				if capacity := m.Capacity(total, i, tc.c); loads[i] > capacity {
					t.Fatalf("step %d: node %d load %d above capacity %d (total %d)", step, i, loads[i], capacity, total+1)
				}
			}
			if notOwner == 0 {
				t.Errorf("hot keys never overflowed their owner: test does not exercise the bound")
			}
		})
	}
}

// refCapacity is ceil(c*(total+1)*w_i/W), written out from the definition.
func refCapacity(nodes []Node, i int, total int64, c float64) int64 {
	if c < 1 {
		c = DefaultLoadFactor
	}
	var w float64
	for _, n := range nodes {
		w += effWeight(n.Weight)
	}
	return int64(math.Ceil(c * float64(total+1) * effWeight(nodes[i].Weight) / w))
}

func TestCapacityTable(t *testing.T) {
	m := New(namedNodes(4))
	for _, tc := range []struct {
		total int64
		c     float64
		want  int64
	}{
		{0, 1.25, 1},   // ceil(1.25*1/4)
		{3, 1.25, 2},   // ceil(1.25*4/4)
		{99, 1.25, 32}, // ceil(1.25*100/4) = 31.25 -> 32
		{99, 1, 25},
		{99, 0, 32}, // default
	} {
		if got := m.Capacity(tc.total, 0, tc.c); got != tc.want {
			t.Errorf("Capacity(%d, 0, %v) = %d, want %d", tc.total, tc.c, got, tc.want)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	m := New(namedNodes(10))
	loads := make([]int64, 10)
	loads[m.Owner(42)] = 1000 // force the bounded walk
	load := func(i int) int64 { return loads[i] }
	buf := make([]int, 0, 10)
	if a := testing.AllocsPerRun(100, func() { m.Owner(42) }); a != 0 {
		t.Errorf("Owner allocs = %v, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() { buf = m.Successors(42, buf) }); a != 0 {
		t.Errorf("Successors allocs = %v, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() { m.OwnerBounded(42, load, 1.25) }); a != 0 {
		t.Errorf("OwnerBounded allocs = %v, want 0", a)
	}
}

var sink int

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{3, 10, 30} {
		for _, weighted := range []bool{false, true} {
			nodes := namedNodes(n)
			if weighted {
				for i := range nodes {
					nodes[i].Weight = float64(1 + i%3)
				}
			}
			m := New(nodes)
			keys := trackKeys(1024)
			b.Run(fmt.Sprintf("nodes=%d/weighted=%v", n, weighted), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					sink += m.Owner(keys[i&1023])
				}
			})
		}
	}
}

func BenchmarkOwnerBounded(b *testing.B) {
	m := New(namedNodes(10))
	loads := make([]int64, 10)
	for i := range loads {
		loads[i] = int64(10 + i)
	}
	load := func(i int) int64 { return loads[i] }
	keys := trackKeys(1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += m.OwnerBounded(keys[i&1023], load, 1.25)
	}
}

func BenchmarkSuccessors(b *testing.B) {
	m := New(namedNodes(10))
	keys := trackKeys(1024)
	buf := make([]int, 0, 10)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = m.Successors(keys[i&1023], buf)
		sink += buf[0]
	}
}
