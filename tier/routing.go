package tier

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/cluster/rendezvous"
)

// PeerPicker is an edge's view of the other edges of its POP: which edge
// owns a track, and which may still hold it after a membership change.
// Implementations must be safe for concurrent use and must not block
// (they are called on the request path).
type PeerPicker interface {
	// Owner returns the edge that should fill key (the track id's xxhash,
	// catalog.Key) and whether that is this node. load counts the work
	// sent to that edge for bounded load: the caller must call its Done
	// when that work is finished.
	Owner(key uint64) (owner Peer, self bool, load Load)
	// Self reports whether this node owns key by plain ownership (no
	// load bounding): its requests are served from this node's main
	// store, others' from its small hot cache.
	Self(key uint64) bool
	// Version identifies the membership this node routes by (sent with
	// peer requests, for logs and loop diagnosis; a change of it clears
	// passive health's down mark of a peer edge).
	Version() uint64
	// Handoff returns the edge that may still hold key's bytes although
	// this node owns it now, when the edges' membership changed within
	// HandoffWindow: the previous owner, leaving or just left and
	// draining; else the owner this node displaced (the next edge in
	// key's rendezvous order), which held the track while this node was
	// away. The owner asks it (only what it has cached) before the
	// shields, so a rolling restart moves bytes between edges instead of
	// sending a wave of misses upstream.
	Handoff(key uint64) (Peer, bool)
}

// ShieldLister names the live shields to fill from. Implementations must
// be safe for concurrent use and must not block.
type ShieldLister interface {
	// Shields appends to dst the base URLs of the live shields in key's
	// preference order.
	Shields(key uint64, dst []string) []string
}

// Routing is an edge's view of its POP: its peers and its shields.
// ClusterRouting provides it from gossip membership.
type Routing interface {
	PeerPicker
	ShieldLister
}

// Load is one unit of work sent to an edge, counted by bounded load
// (ClusterRouting.Owner) until Done. The zero Load counts nothing.
type Load struct{ n *atomic.Int64 }

// Done ends the work. Call it once.
func (l Load) Done() {
	if l.n != nil {
		l.n.Add(-1)
	}
}

// HandoffWindow is how long after a change of the edges' membership an
// owner's misses ask the handoff peer first. Outside it a miss costs no
// extra round trip.
const HandoffWindow = 2 * time.Minute

// Peer is another edge of the POP.
type Peer struct {
	Name string
	URL  string // base URL, "http://host:port"
}

// ClusterRouting routes by cluster membership: rendezvous hashing of the
// track over the live edges, with bounded load, and over the live shields.
type ClusterRouting struct {
	m *cluster.Membership
	// c is the bounded-load factor: no edge is sent more than c times the
	// mean in-flight peer work, beyond a floor of floor requests each (so
	// a quiet POP routes by pure ownership and fetches each chunk once).
	c     float64
	floor int64

	mu       sync.Mutex
	inflight map[string]*atomic.Int64
}

var _ Routing = (*ClusterRouting)(nil)

// NewClusterRouting routes by m with bounded-load factor c (default 1.25
// when c < 1) above floor in-flight requests per edge (default 32 when
// floor <= 0).
func NewClusterRouting(m *cluster.Membership, c float64, floor int64) *ClusterRouting {
	if c < 1 {
		c = 1.25
	}
	if floor <= 0 {
		floor = 32
	}
	return &ClusterRouting{m: m, c: c, floor: floor, inflight: map[string]*atomic.Int64{}}
}

// Owner implements PeerPicker.
func (r *ClusterRouting) Owner(key uint64) (Peer, bool, Load) {
	return r.ownerIn(r.m.View(cluster.RoleEdge), key)
}

// ownerIn is Owner in view v. The in-flight counters of the first 32 edges
// are looked up once per call, on the stack; a larger POP's further edges
// are looked up as the ring asks for them, so every edge's load counts.
func (r *ClusterRouting) ownerIn(v *cluster.View, key uint64) (Peer, bool, Load) {
	if v == nil || len(v.Nodes) == 0 {
		return Peer{}, true, Load{}
	}
	var counters [32]*atomic.Int64
	n := min(len(v.Nodes), len(counters))
	for i := 0; i < n; i++ {
		counters[i] = r.counter(v.Nodes[i].Name)
	}
	counterOf := func(i int) *atomic.Int64 {
		if i < n {
			return counters[i]
		}
		return r.counter(v.Nodes[i].Name)
	}
	i := v.Ring.OwnerBounded(key, func(i int) int64 {
		return max(0, counterOf(i).Load()-r.floor)
	}, r.c)
	if i < 0 {
		return Peer{}, true, Load{}
	}
	if v.IsSelf(i) {
		return Peer{Name: v.Nodes[i].Name}, true, Load{}
	}
	ctr := counterOf(i)
	ctr.Add(1)
	return Peer{Name: v.Nodes[i].Name, URL: baseURL(v.Nodes[i].HTTPAddr)}, false, Load{ctr}
}

// Self implements PeerPicker.
func (r *ClusterRouting) Self(key uint64) bool {
	v := r.m.View(cluster.RoleEdge)
	if v == nil || len(v.Nodes) == 0 {
		return true
	}
	return v.IsSelf(v.Ring.Owner(key))
}

// Shields implements ShieldLister.
func (r *ClusterRouting) Shields(key uint64, dst []string) []string {
	v := r.m.View(cluster.RoleShield)
	if v == nil {
		return dst
	}
	var buf [32]int
	for _, i := range v.Ring.Successors(key, buf[:0]) {
		dst = append(dst, baseURL(v.Nodes[i].HTTPAddr))
	}
	return dst
}

// Handoff implements PeerPicker.
func (r *ClusterRouting) Handoff(key uint64) (Peer, bool) {
	v := r.m.View(cluster.RoleEdge)
	if v == nil || len(v.Nodes) == 0 || time.Since(v.Built) > HandoffWindow {
		return Peer{}, false
	}
	if gone := r.m.Departed(cluster.RoleEdge, HandoffWindow); len(gone) > 0 {
		// Rank the live edges and the departed ones together: a
		// departed edge first means it owned key before it left.
		nodes := make([]rendezvous.Node, 0, len(v.Nodes)+len(gone))
		for _, n := range v.Nodes {
			nodes = append(nodes, rendezvous.Node{ID: n.Name, Weight: float64(n.Weight)})
		}
		for _, n := range gone {
			nodes = append(nodes, rendezvous.Node{ID: n.Name, Weight: float64(n.Weight)})
		}
		if i := rendezvous.New(nodes).Owner(key); i >= len(v.Nodes) {
			g := gone[i-len(v.Nodes)]
			return Peer{Name: g.Name, URL: baseURL(g.HTTPAddr)}, true
		}
	}
	var buf [8]int
	succ := v.Ring.Successors(key, buf[:0])
	if len(succ) < 2 || !v.IsSelf(succ[0]) {
		return Peer{}, false
	}
	n := v.Nodes[succ[1]]
	return Peer{Name: n.Name, URL: baseURL(n.HTTPAddr)}, true
}

// Version implements PeerPicker.
func (r *ClusterRouting) Version() uint64 {
	if v := r.m.View(cluster.RoleEdge); v != nil {
		return v.Digest
	}
	return 0
}

func (r *ClusterRouting) counter(name string) *atomic.Int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.inflight[name]
	if c == nil {
		c = new(atomic.Int64)
		r.inflight[name] = c
	}
	return c
}

func baseURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimSuffix(addr, "/")
	}
	return "http://" + addr
}

// Headers of a peer request (the tier credential rides in
// tierauth.Header), and the peer endpoint's path on an edge's internal
// listener.
const (
	peerHopHeader     = "X-Peer-Hop"
	peerVersionHeader = "X-Peer-Version"
	// onlyIfCachedHeader on a peer request asks for cached bytes only
	// (a handoff): the answer is those bytes, or a 504 carrying the
	// header, and the peer fetches nothing (RFC 9111's only-if-cached).
	onlyIfCachedHeader = "X-Peer-Only-If-Cached"
	peerPrefix         = "/peer/media/"
)
