package tier

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/cluster"
)

// PeerKeyPurpose derives the peer-fill secret from the gossip keyring.
const PeerKeyPurpose = "peer-fill"

// Node is a tier server together with its cluster membership, if its
// configuration has one: what cmd/edge, cmd/shield and cmd/pop run.
type Node struct {
	*Server
	// Members is the node's gossip membership, or nil when it runs alone.
	Members *cluster.Membership
}

// NewNode opens the listener, starts gossip (advertising the listener's
// address unless cfg.Cluster.HTTPAddr says otherwise) and builds the
// server; an edge in a cluster routes by the membership. Call Join, then
// Serve.
func NewNode(cfg Config, logger *slog.Logger, reg *prometheus.Registry, now func() time.Time) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: listen: %w", cfg.Name, err)
	}
	n := &Node{}
	var opts []Option
	if cfg.Cluster.Role != "" {
		cc := cfg.Cluster
		if cc.HTTPAddr == "" {
			cc.HTTPAddr = ln.Addr().String()
			if cfg.TLSCert != "" {
				cc.HTTPAddr = "https://" + cc.HTTPAddr
			}
		}
		if cc.NodeName == "" {
			cc.NodeName = cfg.Name
		}
		if n.Members, err = cluster.New(cc, logger, reg); err != nil {
			ln.Close()
			return nil, err
		}
		if cfg.Role == Edge {
			opts = append(opts, WithRouting(NewClusterRouting(n.Members, cfg.LoadFactor, cfg.LoadFloor), n.Members.PeerKeys(PeerKeyPurpose)))
		}
	}
	if n.Server, err = New(cfg, logger, reg, now, opts...); err != nil {
		ln.Close()
		if n.Members != nil {
			n.Members.Close()
		}
		return nil, err
	}
	n.UseListener(ln)
	return n, nil
}

// Join joins the cluster through seeds (nil: the configured ones). A node
// without a cluster has nothing to join.
func (n *Node) Join(ctx context.Context, seeds []string) error {
	if n.Members == nil {
		return nil
	}
	return n.Members.Join(ctx, seeds)
}

// Shutdown leaves the cluster (so the others stop routing here at once),
// drains the server within ctx, then stops gossip. Safe to call twice.
func (n *Node) Shutdown(ctx context.Context) error {
	if n.Members != nil {
		n.Members.Leave(time.Second)
	}
	err := n.Server.Shutdown(ctx)
	if n.Members != nil {
		n.Members.Close()
	}
	return err
}

// Kill stops the node at once, as a crash would: gossip stops without
// leaving and open connections are closed. For failure tests.
func (n *Node) Kill() {
	if n.Members != nil {
		n.Members.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Server.Shutdown(ctx)
}
