// Package cluster is a node's membership in its POP: edges and shields
// gossip with hashicorp/memberlist (SWIM failure detection, AES-GCM
// encrypted with a shared keyring), each node advertises its role, POP,
// HTTP address and weight in its memberlist metadata, and every node keeps,
// per role, an immutable routing View: the live members and a
// rendezvous.Map over them, replaced atomically on every membership change.
//
// Memberlist calls its event delegate with its own locks held; the
// delegate here only queues a copy of the event and returns. One goroutine
// per Membership folds the queue into the members table and publishes the
// new Views, so gossip never waits on a rebuild, and a request never waits
// on gossip: View is one atomic load.
//
// The caller's loop, for an edge:
//
//	m, err := cluster.New(cfg, logger, reg)
//	...
//	defer m.Close()                     // crash-like: others detect it
//	if err := m.Join(ctx, nil); err != nil { ... } // cfg.Seeds; retry later if all are down
//
//	// per request:
//	key := xxhash.Sum64String(trackID)
//	v := m.View(cluster.RoleEdge)
//	owner := v.Ring.Owner(key)
//	if v.IsSelf(owner) { /* fill from a shield */ } else { /* fill from v.Nodes[owner].HTTPAddr */ }
//
//	// choosing a shield, with failover in preference order:
//	sv := m.View(cluster.RoleShield)
//	var buf [8]int
//	for _, i := range sv.Ring.Successors(key, buf[:0]) { /* try sv.Nodes[i].HTTPAddr */ }
//
//	// on shutdown:
//	m.Leave(time.Second)                // others drop this node at once
//	m.Close()
//
// Bounded load is the caller's: it counts in-flight work per node index of
// one View and calls v.Ring.OwnerBounded(key, load, c).
//
// Tests wait on membership with WaitFor (or Changed), never by sleeping;
// Config.FailureDetectionBound gives the deadline for a crash to be seen.
package cluster
