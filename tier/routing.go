package tier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/cluster"
)

// Routing is an edge's view of its POP: which edge owns a track, and which
// shields to fill from, in preference order. ClusterRouting provides it
// from gossip membership. Implementations must be safe for concurrent use
// and must not block (they are called on the request path).
type Routing interface {
	// Owner returns the edge that should fill key (the track id's xxhash)
	// and whether that is this node. done must be called when the work
	// sent to that edge is finished, so bounded load sees it.
	Owner(key uint64) (owner Peer, self bool, done func())
	// Self reports whether this node owns key by plain ownership (no
	// load bounding): its requests are served from this node's main
	// store, others' from its small hot cache.
	Self(key uint64) bool
	// Shields appends to dst the base URLs of the live shields in key's
	// preference order.
	Shields(key uint64, dst []string) []string
	// Version identifies the membership this node routes by (sent with
	// peer requests, for logs and loop diagnosis).
	Version() uint64
}

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
// when c < 1) above floor in-flight requests per edge (default 32 when 0).
func NewClusterRouting(m *cluster.Membership, c float64, floor int64) *ClusterRouting {
	if c < 1 {
		c = 1.25
	}
	if floor <= 0 {
		floor = 32
	}
	return &ClusterRouting{m: m, c: c, floor: floor, inflight: map[string]*atomic.Int64{}}
}

// Owner implements Routing.
func (r *ClusterRouting) Owner(key uint64) (Peer, bool, func()) {
	v := r.m.View(cluster.RoleEdge)
	if v == nil || len(v.Nodes) == 0 {
		return Peer{}, true, noop
	}
	var counters [32]*atomic.Int64
	n := min(len(v.Nodes), len(counters))
	for i := 0; i < n; i++ {
		counters[i] = r.counter(v.Nodes[i].Name)
	}
	i := v.Ring.OwnerBounded(key, func(i int) int64 {
		if i >= n {
			return 0
		}
		return max(0, counters[i].Load()-r.floor)
	}, r.c)
	if i < 0 {
		return Peer{}, true, noop
	}
	if v.IsSelf(i) {
		return Peer{Name: v.Nodes[i].Name}, true, noop
	}
	ctr := r.counter(v.Nodes[i].Name)
	ctr.Add(1)
	return Peer{Name: v.Nodes[i].Name, URL: baseURL(v.Nodes[i].HTTPAddr)}, false, func() { ctr.Add(-1) }
}

// Self implements Routing.
func (r *ClusterRouting) Self(key uint64) bool {
	v := r.m.View(cluster.RoleEdge)
	if v == nil || len(v.Nodes) == 0 {
		return true
	}
	return v.IsSelf(v.Ring.Owner(key))
}

// Shields implements Routing.
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

// Version implements Routing.
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

func noop() {}

// peerAuth signs and checks requests between the edges of a POP with a
// secret derived from the cluster keyring, so the peer endpoint is never
// reachable with a player token alone. The header is
// "<unix seconds>.<base64url HMAC-SHA256(key, seconds | path)>", accepted
// within peerSkew of the receiver's clock.
type peerAuth struct {
	keys [][]byte // keys[0] signs; all verify
}

const (
	peerAuthHeader    = "X-Peer-Auth"
	peerHopHeader     = "X-Peer-Hop"
	peerVersionHeader = "X-Peer-Version"
	peerSkew          = 60 * time.Second
	peerPrefix        = "/peer/media/"
)

var errPeerAuth = errors.New("peer auth failed")

func (a peerAuth) sign(path string, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + base64.RawURLEncoding.EncodeToString(peerMAC(a.keys[0], ts, path))
}

func (a peerAuth) verify(header, path []byte, now time.Time) error {
	dot := strings.IndexByte(string(header), '.')
	if dot <= 0 {
		return errPeerAuth
	}
	ts := string(header[:dot])
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errPeerAuth
	}
	if d := now.Sub(time.Unix(sec, 0)); d > peerSkew || d < -peerSkew {
		return errPeerAuth
	}
	got, err := base64.RawURLEncoding.Strict().DecodeString(string(header[dot+1:]))
	if err != nil {
		return errPeerAuth
	}
	for _, k := range a.keys {
		if hmac.Equal(got, peerMAC(k, ts, string(path))) {
			return nil
		}
	}
	return errPeerAuth
}

func peerMAC(key []byte, ts, path string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(ts))
	h.Write([]byte{0})
	h.Write([]byte(path))
	return h.Sum(nil)
}
