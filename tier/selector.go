package tier

import (
	"sync/atomic"
)

// selector chooses the upstreams of one fill from a pool: the order in
// which the failover loop (fetcher.failover) tries them.
type selector interface {
	// Select appends to dst the upstreams to try for key (the track's
	// routing key, catalog.Key), first choice first.
	Select(pool *upstreamPool, key uint64, dst []*upstream) []*upstream
}

var _ selector = (*shieldSelector)(nil)

// shieldSelector orders the shields (or, at a shield, the origins) of a
// key: with a ShieldLister, the live shields from membership in the
// track's rendezvous order; without one, or while it names none, the
// configured list, starting at the key's hash. Either way each object is
// filled through one upstream first, so the upstreams' caches do not
// duplicate each other. Available upstreams come first; the others
// (marked down, or full) last, so they are still tried when every
// upstream is unavailable.
type shieldSelector struct {
	static []*upstream  // Config.Upstreams, in order
	live   ShieldLister // nil: static only
	// skipped counts the upstreams passed over because passive health
	// marked them down (put last).
	skipped *atomic.Int64
}

// newShieldSelector makes the upstreams of static in pool (a base URL
// that does not parse is an error) and orders them, or live's shields.
// live may be nil.
func newShieldSelector(pool *upstreamPool, static []string, live ShieldLister, skipped *atomic.Int64) (*shieldSelector, error) {
	s := &shieldSelector{live: live, skipped: skipped}
	for _, b := range static {
		up, err := pool.get(b)
		if err != nil {
			return nil, err
		}
		s.static = append(s.static, up)
	}
	return s, nil
}

// Select implements selector.
func (s *shieldSelector) Select(pool *upstreamPool, key uint64, dst []*upstream) []*upstream {
	var buf [8]*upstream
	down := buf[:0]
	var names [16]string
	var live []string
	if s.live != nil {
		live = s.live.Shields(key, names[:0])
	}
	if len(live) > 0 {
		for _, b := range live {
			if up, err := pool.get(b); err == nil {
				dst, down = s.place(up, dst, down)
			}
		}
	} else if n := len(s.static); n > 0 {
		start := int(key % uint64(n))
		for i := range n {
			dst, down = s.place(s.static[(start+i)%n], dst, down)
		}
	}
	return append(dst, down...)
}

// place appends up to dst when it is available, else to down.
func (s *shieldSelector) place(up *upstream, dst, down []*upstream) ([]*upstream, []*upstream) {
	if up.Available() {
		return append(dst, up), down
	}
	if !up.Healthy() && s.skipped != nil {
		s.skipped.Add(1)
	}
	return dst, append(down, up)
}

// ownerSelector chooses the owning edge of a key, by the PeerPicker's
// rendezvous order with bounded load, for a store that fills from owners
// (an edge's hot store). It selects nothing when this node is the owner
// or the owner is not available: the fill then goes to the shields.
type ownerSelector struct {
	peers PeerPicker
	// skipped counts owners passed over because passive health marked
	// them down.
	skipped *atomic.Int64
}

// Select returns the owner of key and its load, which the caller must
// end (Load.Done) when the work sent to it is finished; nil when there
// is none to ask.
func (s ownerSelector) Select(pool *upstreamPool, key uint64) (*upstream, Load) {
	owner, self, load := s.peers.Owner(key)
	if self {
		load.Done()
		return nil, Load{}
	}
	up, err := pool.peer(owner.URL)
	if err != nil {
		load.Done()
		return nil, Load{}
	}
	if !up.Available() {
		// Passive health: an owner that keeps failing is routed around
		// at once, before gossip declares it dead.
		load.Done()
		if !up.Healthy() && s.skipped != nil {
			s.skipped.Add(1)
		}
		return nil, Load{}
	}
	return up, load
}
