package tier

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/cluster/rendezvous"
)

// TestOwnerBoundedPastThe32ndEdge: in a POP of 40 edges, an owner among
// the edges past the 32nd that is loaded beyond the bound is routed
// around like any other, and its fills are counted while they run.
// Catches: the load of edges past the first 32 read as 0 (bounded load
// then never diverted from them, as before this test), and a Load that
// does not count the fill it stands for.
func TestOwnerBoundedPastThe32ndEdge(t *testing.T) {
	const edges = 40
	v := &cluster.View{Role: cluster.RoleEdge, Self: -1}
	rn := make([]rendezvous.Node, edges)
	for i := range edges {
		name := fmt.Sprintf("edge-%02d", i)
		v.Nodes = append(v.Nodes, cluster.Node{Name: name, HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 9000+i)})
		rn[i] = rendezvous.Node{ID: name, Weight: 1}
	}
	v.Ring = rendezvous.New(rn)
	r := &ClusterRouting{c: 1.25, floor: 1, inflight: map[string]*atomic.Int64{}}

	// A key whose owner is past the 32nd edge.
	var key uint64
	for key = 1; v.Ring.Owner(key) < 32; key++ {
	}
	owner := v.Nodes[v.Ring.Owner(key)].Name
	p, self, load := r.ownerIn(v, key)
	if self || p.Name != owner {
		t.Fatalf("unloaded: routed to %q (self %v), want the owner %q", p.Name, self, owner)
	}
	if got := r.counter(owner).Load(); got != 1 {
		t.Errorf("owner's in-flight count %d during a fill, want 1", got)
	}
	load.Done()
	if got := r.counter(owner).Load(); got != 0 {
		t.Errorf("owner's in-flight count %d after Done, want 0", got)
	}
	// Load the owner far beyond c times the mean: the key goes elsewhere.
	r.counter(owner).Store(1000)
	if p, _, load := r.ownerIn(v, key); p.Name == owner {
		t.Errorf("owner %q with 1000 fills in flight still chosen", owner)
	} else {
		load.Done()
	}
}
