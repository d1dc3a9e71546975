package tier

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
)

// Node is a tier server together with its cluster membership, if its
// configuration has one: what cmd/edge, cmd/shield and cmd/pop run.
type Node struct {
	*Server
	// Members is the node's gossip membership, or nil when it runs alone.
	Members *cluster.Membership

	joined atomic.Bool // Join succeeded (or had no seeds)
}

// NewNode opens both listeners, starts gossip and builds the server; an
// edge in a cluster routes by the membership. Unless cfg.Cluster.HTTPAddr
// says otherwise, the node advertises where peers fill from it: an edge
// its internal listener (plain HTTP, /peer/media/), a shield its public
// listener (/media/). Call Join, then Serve.
func NewNode(cfg Config, logger *slog.Logger, reg *prometheus.Registry, now func() time.Time) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: listen: %w", cfg.Name, err)
	}
	iln, err := net.Listen("tcp", cfg.InternalAddr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s: internal_addr: %w", cfg.Name, err)
	}
	closeAll := func() { ln.Close(); iln.Close() }
	n := &Node{}
	var opts []Option
	if cfg.Cluster.Role != "" {
		cc := cfg.Cluster
		if cc.HTTPAddr == "" {
			switch {
			case cfg.Role == Edge:
				cc.HTTPAddr = iln.Addr().String()
			case cfg.TLSCert != "":
				cc.HTTPAddr = "https://" + ln.Addr().String()
			default:
				cc.HTTPAddr = ln.Addr().String()
			}
		}
		if cc.NodeName == "" {
			cc.NodeName = cfg.Name // the default: one name per node
		}
		if n.Members, err = cluster.New(cc, logger, reg); err != nil {
			closeAll()
			return nil, err
		}
		if cfg.Role == Edge {
			opts = append(opts, WithRouting(NewClusterRouting(n.Members, cfg.LoadFactor, cfg.LoadFloor)))
		}
	}
	if n.Server, err = New(cfg, logger, reg, now, opts...); err != nil {
		closeAll()
		if n.Members != nil {
			n.Members.Close()
		}
		return nil, err
	}
	n.UseListener(ln)
	n.UseInternalListener(iln)
	if n.Members != nil {
		n.Server.ready = n.ready
	}
	return n, nil
}

// ready is /readyz's condition for a node in a cluster: it has joined
// (a first node with no seeds has nothing to join) and, for an edge, it
// sees at least one live shield to fill from. Before, a load balancer
// would send players to an edge that can only answer 502.
func (n *Node) ready() bool {
	if !n.joined.Load() {
		return false
	}
	return n.cfg.Role != Edge || len(n.Members.Members(cluster.RoleShield)) > 0
}

// Join joins the cluster through seeds (nil: the configured ones). A node
// without a cluster has nothing to join. It fails with
// cluster.ErrDuplicateName when another member has this node's name: the
// caller must then stop. /readyz answers 200 only after a Join succeeded.
func (n *Node) Join(ctx context.Context, seeds []string) error {
	if n.Members == nil {
		return nil
	}
	if err := n.Members.Join(ctx, seeds); err != nil {
		return err
	}
	n.joined.Store(true)
	return nil
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

// Reload puts cfg in force without a restart, as Server.Reload, and
// also swaps the gossip keyring (cluster.secret_keys). Nothing changes
// unless the whole of cfg is accepted.
func (n *Node) Reload(cfg Config) error {
	if err := n.Server.checkReload(cfg); err != nil {
		return err
	}
	if n.Members != nil && !slices.Equal(cfg.Cluster.SecretKeys, n.Config().Cluster.SecretKeys) {
		if err := n.Members.SetKeys(cfg.Cluster.SecretKeys); err != nil {
			return config.Prefix("cluster", config.Errorf("secret_keys", "%v", err))
		}
	}
	return n.Server.applyReload(cfg)
}

// ReloadFrom makes SIGHUP and POST /admin/reload load the configuration
// with load (the file again, flags on top) and Reload it.
func (n *Node) ReloadFrom(load func() (Config, error)) {
	n.OnReload(func() error {
		cfg, err := load()
		if err != nil {
			return err
		}
		return n.Reload(cfg)
	})
}
