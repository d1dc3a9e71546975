package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/cluster/rendezvous"
)

// ErrClosed is returned by Join, Leave and WaitFor after Close.
var ErrClosed = errors.New("cluster: membership closed")

// ErrDuplicateName is returned by Join when another live member already
// has this node's name at another address: two nodes cannot share one
// name (each would see the other's address for it, and the hash maps
// would route to one of them only), so the second must not start.
var ErrDuplicateName = errors.New("cluster: node_name is already used by another member")

// Node is a live member as this node sees it.
type Node struct {
	// Name is the member's unique node name, its ID in the hash maps.
	Name string
	// Addr is the member's gossip address, "ip:port": a seed for Join.
	Addr string
	// Role is RoleEdge or RoleShield.
	Role string
	// POP is the member's point of presence, as configured.
	POP string
	// HTTPAddr is where the member takes HTTP requests, as configured.
	HTTPAddr string
	// Weight is the member's relative capacity, 1 to 1000.
	Weight int
}

// View is an immutable routing snapshot of the live members of one role.
// A new View replaces it (atomically) whenever that role's membership
// changes; a caller that reads View once per request routes every decision
// of that request by one consistent snapshot.
type View struct {
	// Role is the role of every node in Nodes.
	Role string
	// Version increases with every change of membership seen by this
	// node (of any role), so a later View has a larger Version. Versions
	// are local: two nodes' Versions do not compare; Digest does.
	Version uint64
	// Digest is a hash of Nodes (names, addresses, weights) and nothing
	// else: two nodes with equal Digests route identically.
	Digest uint64
	// Self is this node's index in Nodes, or -1 when this node does not
	// have Role (or has left).
	Self int
	// Nodes are the live members of Role, sorted by Name. Suspect members
	// stay until memberlist declares them dead, so routing does not churn
	// on a lost packet; callers fail over along Ring.Successors on errors.
	Nodes []Node
	// Ring maps keys to indexes into Nodes; node i of Ring is Nodes[i]
	// with ID Name and Weight Weight.
	Ring *rendezvous.Map
	// Built is when this node built the View (its membership changed).
	Built time.Time
}

// Owner returns the node that owns key (the track id's xxhash), and false
// if the View is empty.
func (v *View) Owner(key uint64) (Node, bool) {
	i := v.Ring.Owner(key)
	if i < 0 {
		return Node{}, false
	}
	return v.Nodes[i], true
}

// IsSelf reports whether Nodes[i] is this node.
func (v *View) IsSelf(i int) bool { return i >= 0 && i == v.Self }

// Membership is this node's membership in a cluster: memberlist gossip
// underneath, and a View per role on top, rebuilt off memberlist's
// goroutines whenever a member joins, changes or leaves.
type Membership struct {
	keyring *memberlist.Keyring // the gossip keys; SetKeys changes them
	cfg     Config
	log     *slog.Logger
	ml      *memberlist.Memberlist
	meta    atomic.Pointer[[]byte] // this node's encoded metadata
	reg     prometheus.Registerer
	coll    *collector

	edge, shield atomic.Pointer[View]

	// qmu guards the queue of memberlist events not yet applied. The
	// event delegate only appends and kicks, so memberlist never waits on
	// the rebuild.
	qmu   sync.Mutex
	queue []event
	kick  chan struct{} // capacity 1: coalesced wake-ups for run

	// mu guards the members table and the change notification.
	mu      sync.Mutex
	members map[string]*member
	version uint64
	changed chan struct{} // closed and replaced on every change

	// life serialises Leave and Close: memberlist panics on a Leave after
	// Shutdown.
	life   sync.Mutex
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup

	// conflict is the address of another live member with this node's
	// name, once memberlist has reported one.
	conflict atomic.Pointer[string]
}

// member is one entry of the members table.
type member struct {
	node    Node
	alive   bool
	leaving bool      // announced Leave: out of the Views already
	left    bool      // left gracefully (else died) when !alive
	gone    time.Time // when it stopped being alive
}

type eventKind int

const (
	evJoin eventKind = iota
	evUpdate
	evLeave
)

// event is a memberlist notification, with the node copied: memberlist
// reuses its Node after the call returns.
type event struct {
	kind eventKind
	name string
	addr string
	meta []byte
}

// New validates cfg, starts gossip on its bind address and returns the
// membership of a one-node cluster: this node. Call Join to meet the
// others. logger may be nil (no logs); reg may be nil (no metrics), else
// cluster_members{role,state} is registered on it, and unregistered by
// Close.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster: config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", cfg.NodeName)
	keyring, err := cfg.keyring()
	if err != nil {
		return nil, fmt.Errorf("cluster: keyring: %w", err)
	}
	m := &Membership{
		cfg:     cfg,
		log:     logger,
		reg:     reg,
		kick:    make(chan struct{}, 1),
		members: make(map[string]*member),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	md := encodeMeta(nil, cfg.meta())
	m.meta.Store(&md)
	for _, role := range []string{RoleEdge, RoleShield} {
		m.viewPtr(role).Store(&View{Role: role, Self: -1, Ring: rendezvous.New(nil)})
	}
	if reg != nil {
		m.coll = newCollector(m)
		if err := reg.Register(m.coll); err != nil {
			return nil, fmt.Errorf("cluster: register metrics: %w", err)
		}
	}
	mc := cfg.memberlistConfig(delegate{m}, events{m})
	mc.Conflict = conflicts{m}
	mc.Keyring = keyring
	m.keyring = keyring
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.LogOutput = nil
	mc.Logger = log.New(logWriter{logger}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		if reg != nil {
			reg.Unregister(m.coll)
		}
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	m.ml = ml
	// Memberlist announced this node to itself during Create: apply it now
	// so that View(cfg.Role) holds this node when New returns.
	m.apply()
	m.wg.Add(1)
	go m.run()
	logger.Info("cluster: gossip started", "addr", m.Addr(), "role", cfg.Role, "profile", cfg.Profile)
	return m, nil
}

// Join contacts seeds ("host:port"; nil means the configured Seeds) and
// exchanges full state with every one it reaches. It succeeds if at least
// one answered; with no seeds at all it does nothing (a first node). It
// returns when done or when ctx ends; a cancelled join attempt may still
// complete in the background, within the profile's TCP timeout.
func (m *Membership) Join(ctx context.Context, seeds []string) error {
	if seeds == nil {
		seeds = m.cfg.Seeds
	}
	if len(seeds) == 0 {
		return nil
	}
	m.life.Lock()
	closed := m.closed
	m.life.Unlock()
	if closed {
		return ErrClosed
	}
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	go func() {
		n, err := m.ml.Join(seeds)
		res <- result{n, err}
	}()
	select {
	case r := <-res:
		if c := m.conflict.Load(); c != nil {
			return fmt.Errorf("%w: %q is at %s", ErrDuplicateName, m.cfg.NodeName, *c)
		}
		if r.err != nil {
			return fmt.Errorf("cluster: join %v: %w", seeds, r.err)
		}
		m.log.Info("cluster: joined", "seeds", seeds, "reached", r.n)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: join %v: %w", seeds, ctx.Err())
	}
}

// View returns the current routing view of role (RoleEdge or RoleShield),
// or nil for another role. It never blocks and does not allocate.
func (m *Membership) View(role string) *View {
	if p := m.viewPtr(role); p != nil {
		return p.Load()
	}
	return nil
}

// Members returns the live members with role, or all live members if role
// is "", sorted by name. Members whose metadata could not be read are left
// out.
func (m *Membership) Members(role string) []Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.aliveLocked(role)
}

// Departed returns the members of role that are leaving, or left
// gracefully less than within ago: out of the Views, but perhaps still
// draining, so their caches may be read for a handoff (see tier's
// Routing.Handoff). Members that died are not listed.
func (m *Membership) Departed(role string, within time.Duration) []Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var out []Node
	for _, mem := range m.members {
		if mem.node.Role != role || mem.node.Name == m.cfg.NodeName {
			continue
		}
		if (mem.alive && mem.leaving) || (!mem.alive && mem.left && now.Sub(mem.gone) < within) {
			out = append(out, mem.node)
		}
	}
	return out
}

// Self returns this node as the others see it.
func (m *Membership) Self() Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mem, ok := m.members[m.cfg.NodeName]; ok {
		return mem.node
	}
	return Node{Name: m.cfg.NodeName, Role: m.cfg.Role, POP: m.cfg.POP, HTTPAddr: m.cfg.HTTPAddr, Weight: m.cfg.Weight}
}

// Addr is this node's advertised gossip address, "ip:port", for others'
// seed lists (useful with BindPort 0).
func (m *Membership) Addr() string {
	return m.Self().Addr
}

// Version is the Version of the latest change this node has applied.
func (m *Membership) Version() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version
}

// Changed returns a channel that is closed when this node next applies a
// membership event (after replacing any View it changed). To wait for a
// condition, take the channel, check the condition, then wait on the
// channel: WaitFor does this.
func (m *Membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// WaitFor returns nil as soon as cond() is true, checking it now and after
// every change of membership; it returns ctx's error if ctx ends first, or
// ErrClosed after Close. cond must not call WaitFor.
func (m *Membership) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		ch := m.Changed()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.done:
			return ErrClosed
		}
	}
}

// Leave tells the cluster this node is going, so the others drop it at
// once instead of after failure detection: first it re-announces itself as
// leaving (the others take it out of their Views while it still serves, so
// in-flight requests routed to it complete), then it sends memberlist's
// leave message. It waits up to timeout in all (0: no limit) for the two
// broadcasts. The node keeps gossiping until Close.
func (m *Membership) Leave(timeout time.Duration) error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return ErrClosed
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	md := m.cfg.meta()
	md.Leaving = true
	b := encodeMeta(nil, md)
	m.meta.Store(&b)
	if err := m.ml.UpdateNode(timeout); err != nil {
		// Go on: the leave message still tells the others.
		m.log.Warn("cluster: announcing leave", "err", err)
	}
	if timeout > 0 {
		timeout = max(time.Until(deadline), time.Millisecond)
	}
	if err := m.ml.Leave(timeout); err != nil {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

// Close stops gossip at once (without Leave: to the others, a crash),
// stops the view builder and unregisters the metrics. It is safe to call
// more than once.
func (m *Membership) Close() error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	err := m.ml.Shutdown()
	close(m.done)
	m.wg.Wait()
	if m.reg != nil {
		m.reg.Unregister(m.coll)
	}
	if err != nil {
		return fmt.Errorf("cluster: shutdown: %w", err)
	}
	return nil
}

// run applies queued events until Close.
func (m *Membership) run() {
	defer m.wg.Done()
	for {
		select {
		case <-m.kick:
			m.apply()
		case <-m.done:
			return
		}
	}
}

// enqueue is called on memberlist's goroutines: it must not block.
func (m *Membership) enqueue(ev event) {
	m.qmu.Lock()
	m.queue = append(m.queue, ev)
	m.qmu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default: // a wake-up is already pending; it will see this event
	}
}

// apply folds the queued events into the members table and republishes
// the Views that changed.
func (m *Membership) apply() {
	m.qmu.Lock()
	evs := m.queue
	m.queue = nil
	m.qmu.Unlock()
	if len(evs) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, ev := range evs {
		m.applyLocked(ev, now)
	}
	m.pruneLocked(now)
	changed := false
	for _, role := range []string{RoleEdge, RoleShield} {
		nodes := m.aliveLocked(role)
		p := m.viewPtr(role)
		if cur := p.Load(); cur.Version > 0 && slices.Equal(cur.Nodes, nodes) {
			continue
		}
		if !changed {
			m.version++
			changed = true
		}
		p.Store(m.buildView(role, nodes, m.version))
	}
	// Wake waiters on any event, even one that changed no View (a member
	// that died after announcing its leave, say): WaitFor conditions may
	// look at Members or the metrics too.
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Membership) applyLocked(ev event, now time.Time) {
	mem := m.members[ev.name]
	switch ev.kind {
	case evJoin, evUpdate:
		md, err := decodeMeta(ev.meta)
		if err != nil {
			// Kept out of every View (no role), but counted.
			m.log.Warn("cluster: member with unreadable metadata", "member", ev.name, "addr", ev.addr, "err", err)
			md = meta{}
		}
		n := Node{Name: ev.name, Addr: ev.addr, Role: md.Role, POP: md.POP, HTTPAddr: md.HTTPAddr, Weight: md.Weight}
		switch {
		case md.Leaving:
			m.log.Info("cluster: member leaving", "member", ev.name, "role", n.Role)
		case mem == nil || !mem.alive || mem.leaving || mem.node != n:
			m.log.Info("cluster: member up", "member", ev.name, "role", n.Role, "addr", n.Addr, "http", n.HTTPAddr)
		}
		m.members[ev.name] = &member{node: n, alive: true, leaving: md.Leaving}
	case evLeave:
		if mem == nil {
			return
		}
		if mem.alive {
			how := "died"
			if mem.leaving {
				how = "left"
			}
			m.log.Info("cluster: member "+how, "member", ev.name, "role", mem.node.Role)
		}
		mem.alive, mem.left, mem.gone = false, mem.leaving, now
	}
}

// pruneLocked forgets members gone for longer than memberlist remembers
// them, so a churning cluster does not grow the table forever.
func (m *Membership) pruneLocked(now time.Time) {
	keep := m.cfg.memberlistConfig(nil, nil).GossipToTheDeadTime
	for name, mem := range m.members {
		if !mem.alive && now.Sub(mem.gone) > keep {
			delete(m.members, name)
		}
	}
}

// aliveLocked lists the alive members of role ("" = all) by name.
func (m *Membership) aliveLocked(role string) []Node {
	var out []Node
	for _, mem := range m.members {
		if mem.alive && !mem.leaving && mem.node.Role != "" && (role == "" || mem.node.Role == role) {
			out = append(out, mem.node)
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (m *Membership) buildView(role string, nodes []Node, version uint64) *View {
	rn := make([]rendezvous.Node, len(nodes))
	d := xxhash.New()
	self := -1
	for i, n := range nodes {
		rn[i] = rendezvous.Node{ID: n.Name, Weight: float64(n.Weight)}
		if n.Name == m.cfg.NodeName {
			self = i
		}
		d.WriteString(n.Name)
		d.WriteString("\x00")
		d.WriteString(n.HTTPAddr)
		d.WriteString("\x00")
		d.WriteString(strconv.Itoa(n.Weight))
		d.WriteString("\x00")
	}
	return &View{Role: role, Version: version, Digest: d.Sum64(), Self: self, Nodes: nodes, Ring: rendezvous.New(rn), Built: time.Now()}
}

func (m *Membership) viewPtr(role string) *atomic.Pointer[View] {
	switch role {
	case RoleEdge:
		return &m.edge
	case RoleShield:
		return &m.shield
	}
	return nil
}

// delegate gives memberlist this node's metadata; the rest of the
// Delegate interface (user messages and state) is unused.
type delegate struct{ m *Membership }

var _ memberlist.Delegate = delegate{}

func (d delegate) NodeMeta(limit int) []byte {
	b := *d.m.meta.Load()
	if len(b) > limit {
		// Validate bounds the strings so this cannot happen.
		panic(fmt.Sprintf("cluster: node metadata of %d bytes exceeds %d", len(b), limit))
	}
	return b
}
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// events turns memberlist's notifications into queued events. Memberlist
// calls it with its node lock held: it copies and returns.
type events struct{ m *Membership }

var _ memberlist.EventDelegate = events{}

func (e events) NotifyJoin(n *memberlist.Node)   { e.m.enqueue(newEvent(evJoin, n)) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.m.enqueue(newEvent(evUpdate, n)) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.m.enqueue(newEvent(evLeave, n)) }

func newEvent(kind eventKind, n *memberlist.Node) event {
	return event{
		kind: kind,
		name: n.Name,
		addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		meta: slices.Clone(n.Meta),
	}
}

// SetKeys replaces the gossip keyring with keys (base64, as
// Config.SecretKeys; the first becomes primary) without a restart: new
// keys are installed, the first is used to encrypt, and keys no longer
// listed are removed. Rotate as with the configuration: add the new key
// second everywhere, then first, then drop the old one.
func (m *Membership) SetKeys(keys []string) error {
	kr := m.keyring
	if kr == nil {
		return errors.New("cluster: gossip without a keyring")
	}
	cfg := Config{SecretKeys: keys}
	dec, err := cfg.keys()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if len(dec) == 0 {
		return errors.New("cluster: secret_keys: at least one key")
	}
	for _, k := range dec {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("cluster: add key: %w", err)
		}
	}
	if err := kr.UseKey(dec[0]); err != nil {
		return fmt.Errorf("cluster: use key: %w", err)
	}
	keep := map[string]bool{}
	for _, k := range dec {
		keep[string(k)] = true
	}
	for _, k := range kr.GetKeys() {
		if !keep[string(k)] {
			if err := kr.RemoveKey(k); err != nil {
				return fmt.Errorf("cluster: remove key: %w", err)
			}
		}
	}
	return nil
}

// conflicts records memberlist's report of a member that has this node's
// name at another address (see ErrDuplicateName).
type conflicts struct{ m *Membership }

func (c conflicts) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name != c.m.cfg.NodeName {
		return
	}
	addr := existing.Address() + " and " + other.Address()
	c.m.conflict.Store(&addr)
	c.m.log.Error("cluster: another member has this node's name", "name", existing.Name, "addr", addr)
}

// Conflict returns the address of another member found with this node's
// name, if any.
func (m *Membership) Conflict() (string, bool) {
	if c := m.conflict.Load(); c != nil {
		return *c, true
	}
	return "", false
}
