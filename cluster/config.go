package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/musiccdn/cdn/config"
)

// Roles a node can have. Each role gets its own View.
const (
	RoleEdge   = "edge"
	RoleShield = "shield"
)

// Profiles name a set of memberlist timers.
const (
	// ProfileLAN is memberlist's DefaultLANConfig: probe every 1 s with a
	// 500 ms timeout, suspicion 4 x log10(N) probe intervals (at least 4 s),
	// gossip every 200 ms, full state sync every 30 s. A crashed node is
	// dropped after about 6 s in a small POP (measured with 5 nodes on
	// loopback: median 5.95 s, 5.8 to 7.2 s; with SuspicionMult 3, median
	// 4.8 s); a slow-but-alive node is rarely declared dead by mistake.
	// For deployment.
	ProfileLAN = "lan"
	// ProfileFast probes every 100 ms with a 60 ms timeout and a
	// suspicion of 2 probe intervals, gossips every 20 ms and syncs full
	// state every 2 s: a crashed node is dropped in well under a second.
	// It trades bandwidth and false suspicions under load for speed: for
	// tests and demos on one host, not for a real network.
	ProfileFast = "fast"
)

// DefaultPort is the gossip port (UDP and TCP) used when BindPort or a seed
// leaves it out; memberlist's own default.
const DefaultPort = 7946

// Config configures one node's membership. Fields map one to one onto the
// cluster section of a configuration file.
type Config struct {
	// NodeName names this node uniquely within the cluster; it is also the
	// node's ID in the hash maps, so keep it stable across restarts to keep
	// the node's share of tracks. Default: the host name.
	NodeName string `yaml:"node_name"`

	// BindAddr is the IP address gossip listens on (UDP and TCP).
	// Default "0.0.0.0".
	BindAddr string `yaml:"bind_addr"`

	// BindPort is the gossip port. Default DefaultPort (7946); 0 picks an
	// ephemeral port (tests), which AdvertiseAddr and Membership.Addr then
	// report.
	BindPort int `yaml:"bind_port"`

	// AdvertiseAddr is the IP address other nodes reach this node at, for
	// when BindAddr is 0.0.0.0 or behind NAT. Default "": memberlist picks
	// the bind address, or the first private address when bound to all.
	AdvertiseAddr string `yaml:"advertise_addr"`

	// Seeds are "host:port" gossip addresses of existing members to join
	// through (port defaults to DefaultPort). Any one reachable seed is
	// enough; listing this node itself is harmless. Empty: this node
	// starts a new cluster and waits to be joined.
	Seeds []string `yaml:"seeds"`

	// SecretKeys is the gossip keyring: base64 (standard encoding) AES keys
	// of 16, 24 or 32 bytes. The first encrypts what this node sends; all
	// are tried on what it receives, so a key is rotated by adding the new
	// one second everywhere, then moving it first, then removing the old.
	// Required: a node without a matching key cannot join. (Fills between
	// nodes are authenticated separately, by the tier keys: tierauth.)
	SecretKeys []string `yaml:"secret_keys"`

	// Role is RoleEdge or RoleShield. Required.
	Role string `yaml:"role"`

	// POP names the point of presence; carried in the node metadata for
	// logs and dashboards. Optional, at most 160 bytes.
	POP string `yaml:"pop"`

	// HTTPAddr is the "host:port" (or URL base "http://host:port") other
	// nodes send HTTP requests to: peer fills for an edge, media requests
	// for a shield. Required.
	HTTPAddr string `yaml:"http_addr"`

	// Weight is this node's relative capacity in the hash maps: a node of
	// weight 2 owns about twice the tracks of one of weight 1. 1 to 1000;
	// default 1.
	Weight int `yaml:"weight"`

	// Profile is ProfileLAN (default) or ProfileFast.
	Profile string `yaml:"profile"`

	// SuspicionMult overrides the profile's suspicion multiplier, the
	// timer that dominates failure detection: a member that fails its
	// probes is suspect for SuspicionMult x max(1, log10 N) probe intervals
	// (once SuspicionMult-2 others confirm) before it is declared dead.
	// Lower drops a crashed node sooner (each step is one probe interval,
	// 1 s with the LAN profile) but declares a paused or overloaded node
	// dead sooner too. 0 keeps the profile's (lan 4, fast 2); else 2 to 10.
	SuspicionMult int `yaml:"suspicion_mult"`
}

// DefaultConfig returns the defaults: LAN profile, port 7946 on all
// addresses, weight 1, node name from the host name. Role, HTTPAddr and
// SecretKeys have no default.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName: host,
		BindAddr: "0.0.0.0",
		BindPort: DefaultPort,
		Weight:   1,
		Profile:  ProfileLAN,
	}
}

// Validate reports every invalid field as a *config.FieldError.
func (c Config) Validate() error {
	var errs config.Errors
	if c.NodeName == "" {
		errs.Add("node_name", "must be set")
	} else if len(c.NodeName) > 128 {
		errs.Add("node_name", "longer than 128 bytes")
	}
	if net.ParseIP(c.BindAddr) == nil {
		errs.Add("bind_addr", "%q is not an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > math.MaxUint16 {
		errs.Add("bind_port", "%d is not a port (0 to 65535; 0 = ephemeral)", c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		errs.Add("advertise_addr", "%q is not an IP address", c.AdvertiseAddr)
	}
	for i, s := range c.Seeds {
		if err := validSeed(s); err != nil {
			errs.Add(fmt.Sprintf("seeds[%d]", i), "%v", err)
		}
	}
	if len(c.SecretKeys) == 0 {
		errs.Add("secret_keys", "at least one key is required (base64 of 16, 24 or 32 random bytes)")
	}
	for i, k := range c.SecretKeys {
		if _, err := decodeKey(k); err != nil {
			errs.Add(fmt.Sprintf("secret_keys[%d]", i), "%v", err)
		}
	}
	switch c.Role {
	case RoleEdge, RoleShield:
	default:
		errs.Add("role", "%q is not %q or %q", c.Role, RoleEdge, RoleShield)
	}
	if len(c.POP) > maxMetaString {
		errs.Add("pop", "longer than %d bytes", maxMetaString)
	}
	if c.HTTPAddr == "" {
		errs.Add("http_addr", "must be set")
	} else if len(c.HTTPAddr) > maxMetaString {
		errs.Add("http_addr", "longer than %d bytes", maxMetaString)
	}
	if c.Weight < 1 || c.Weight > maxWeight {
		errs.Add("weight", "%d is not between 1 and %d", c.Weight, maxWeight)
	}
	switch c.Profile {
	case ProfileLAN, ProfileFast:
	default:
		errs.Add("profile", "%q is not %q or %q", c.Profile, ProfileLAN, ProfileFast)
	}
	if c.SuspicionMult != 0 && (c.SuspicionMult < 2 || c.SuspicionMult > 10) {
		errs.Add("suspicion_mult", "%d is not 0 (profile default) or 2 to 10", c.SuspicionMult)
	}
	return errs.Err()
}

const maxWeight = 1000

// FailureDetectionBound is a conservative upper bound on the time from a
// node of an n-node cluster crashing (no Leave) to every other node's views
// excluding it, with c's profile and an unloaded host. It adds up, from
// memberlist's protocol:
//   - probe wait: each node probes the others round robin, one per probe
//     interval, reshuffling after each round, so one prober may take up
//     to 2(n-1) intervals to reach the dead node;
//   - the failed probe itself: a probe interval, stretched up to the
//     awareness multiplier on a node that is itself struggling;
//   - suspicion: SuspicionMult x max(1, log10 n) probe intervals, times
//     SuspicionMaxTimeoutMult when memberlist waits for confirmations
//     (SuspicionMult-2 of them; none when n-2 is fewer);
//   - dissemination of the dead message: its retransmit limit in gossip
//     rounds, plus one gossip round.
//
// Measured times are far below it (the first of n-1 probers usually finds
// the dead node within an interval or two, and confirmations shorten
// suspicion): see the package tests for figures.
func (c Config) FailureDetectionBound(n int) time.Duration {
	mc := c.memberlistConfig(nil, nil)
	n = max(n, 2)
	probe := time.Duration(2*(n-1)) * mc.ProbeInterval
	probe += time.Duration(max(mc.AwarenessMaxMultiplier, 1)) * mc.ProbeInterval
	scale := math.Max(1, math.Log10(float64(n)))
	suspicionMin := time.Duration(float64(mc.SuspicionMult) * scale * float64(mc.ProbeInterval))
	suspicion := suspicionMin
	if k := mc.SuspicionMult - 2; k >= 1 && n-2 >= k {
		suspicion = time.Duration(mc.SuspicionMaxTimeoutMult) * suspicionMin
	}
	retransmit := mc.RetransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
	gossip := time.Duration(retransmit+1) * mc.GossipInterval
	return probe + suspicion + gossip
}

// meta is the metadata c makes this node advertise.
func (c Config) meta() meta {
	return meta{Role: c.Role, POP: c.POP, HTTPAddr: c.HTTPAddr, Weight: c.Weight}
}

// memberlistConfig maps c onto a memberlist configuration for its profile.
// c must be valid. d and ev may be nil (for FailureDetectionBound).
func (c Config) memberlistConfig(d memberlist.Delegate, ev memberlist.EventDelegate) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	if c.Profile == ProfileFast {
		mc.ProbeInterval = 100 * time.Millisecond
		mc.ProbeTimeout = 60 * time.Millisecond
		mc.SuspicionMult = 2 // k = 0 confirmations: the minimum timeout applies
		mc.SuspicionMaxTimeoutMult = 2
		mc.AwarenessMaxMultiplier = 2
		mc.IndirectChecks = 2
		mc.RetransmitMult = 3
		mc.GossipInterval = 20 * time.Millisecond
		mc.GossipToTheDeadTime = 2 * time.Second
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = time.Second
		mc.DeadNodeReclaimTime = time.Second
	}
	if c.SuspicionMult != 0 {
		mc.SuspicionMult = c.SuspicionMult
	}
	mc.Name = c.NodeName
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertisePort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.Delegate = d
	mc.Events = ev
	// No DNS look-ups of node names through resolv.conf: seeds are
	// addresses.
	mc.DNSConfigPath = ""
	return mc
}

// GenerateKey returns a new random 32-byte (AES-256) gossip key in the
// base64 form SecretKeys takes, for tools that set up a cluster (cmd/pop on
// loopback, or an operator's first key).
func GenerateKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cluster: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// keyring decodes SecretKeys into a memberlist keyring, first key primary.
func (c Config) keyring() (*memberlist.Keyring, error) {
	keys, err := c.keys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no secret keys")
	}
	return memberlist.NewKeyring(keys, keys[0])
}

func (c Config) keys() ([][]byte, error) {
	keys := make([][]byte, 0, len(c.SecretKeys))
	for i, s := range c.SecretKeys {
		k, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("secret_keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not valid base64")
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return nil, fmt.Errorf("decodes to %d bytes, want 16, 24 or 32", len(k))
	}
	return k, nil
}

func validSeed(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// A bare host means the default port.
		if s == "" {
			return errors.New("empty")
		}
		host, port = s, strconv.Itoa(DefaultPort)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > math.MaxUint16 {
		return fmt.Errorf("%q has a bad port", s)
	}
	return nil
}
