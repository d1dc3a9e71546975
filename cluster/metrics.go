package cluster

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exports cluster_members{role,state}: members by role and by
// state (alive, leaving, dead, left) as this node sees them, read from the members
// table at scrape time. Memberlist v0.7.0 tells its delegates nothing of
// suspicion, so a suspect member counts as alive until it is declared dead.
// "left" means the member announced its Leave first; a leave message that
// overtakes that announcement in the gossip counts the member as dead, so
// the split between the two is best effort. Dead and left members are counted for as long as memberlist gossips about
// them (GossipToTheDeadTime). Members whose metadata could not be read
// have role "unknown".
type collector struct {
	m    *Membership
	desc *prometheus.Desc
}

func newCollector(m *Membership) *collector {
	return &collector{
		m: m,
		desc: prometheus.NewDesc("cluster_members",
			"Cluster members known to this node, by role and state (alive, leaving, dead, left).",
			[]string{"role", "state"}, nil),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ role, state string }
	counts := map[key]int{}
	for _, role := range []string{RoleEdge, RoleShield} {
		for _, state := range []string{"alive", "leaving", "dead", "left"} {
			counts[key{role, state}] = 0
		}
	}
	c.m.mu.Lock()
	for _, mem := range c.m.members {
		role := mem.node.Role
		if role == "" {
			role = "unknown"
		}
		state := "alive"
		switch {
		case mem.alive && mem.leaving:
			state = "leaving"
		case mem.alive:
		case mem.left:
			state = "left"
		default:
			state = "dead"
		}
		counts[key{role, state}]++
	}
	c.m.mu.Unlock()
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.role, k.state)
	}
}
