// Package admin is the origin's operator API for purges and takedowns, on
// the origin's internal listener:
//
//	POST /v1/admin/purge    Authorization: Bearer <admin token>
//	     {"tracks": ["t5", ...], "takedown": false}
//	POST /v1/admin/restore  Authorization: Bearer <admin token>
//	     {"tracks": ["t5", ...]}
//	POST /v1/admin/reload   Authorization: Bearer <admin token>
//	     re-read the origin's configuration file (as SIGHUP): keys,
//	     tier_keys, admin.pops; a bad file is a 400 naming line and field
//
// A purge drops every tier and seek table of the tracks from every node of
// every configured POP and answers 200 only once every node has: first
// every shield of a POP, then every edge, twice (an edge's first round may
// race a peer fill from an edge not yet purged; the second round starts
// after every edge has dropped the old bytes, so what it finds was filled
// afterwards from purged nodes, and fills in flight across it are
// discarded by cache.Store.Purge). POPs are purged concurrently. A node
// that does not answer 200 within Config.Timeout makes the call a 502
// naming it; purges are idempotent, so the caller retries.
//
// A takedown (`"takedown": true`) is a purge that also stops the track:
// first the origin refuses new manifests for it (403, as a rights denial)
// and its /media/ answers 404, then every edge refuses the tokens of the
// track issued before the call (tier.Server.Purge with a takedown time).
// Takedowns are kept in Config.File across restarts; restore lifts one.
//
// Owner and cost: the callers are operators and the scripts of the rights
// team, with the admin token, on the private network only. One request
// reads at most maxBody bytes and names at most MaxTracks tracks; it
// costs 3 calls per node of every POP (one per shield, two per edge), each
// bounded by Config.Timeout, at most Concurrency at once per POP. Without
// the token the answer is 401; with a wrong one 403; nothing is read
// beyond the header.
//
// The origin knows the nodes from its configuration (admin.pops: the
// internal base URLs of each POP's shields and edges), not from gossip:
// the origin is not a member of any POP's cluster, and an explicit list
// makes the call's answer mean "every node named here dropped it". A POP
// that grows adds its node to the list (and reloads or restarts the
// origin).
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/metric"
	"github.com/musiccdn/cdn/tierauth"
)

// MaxTracks is the most tracks one call may name.
const MaxTracks = 1000

const maxBody = 64 << 10

// Config configures the admin API. It maps onto the origin's admin
// section.
type Config struct {
	// Token is the admin bearer token (at least 32 characters). Empty:
	// the admin API is off (404).
	Token string `yaml:"token"`
	// POPs are the POPs a purge reaches, each with the internal base URLs
	// of its shields and edges.
	POPs []POPConfig `yaml:"pops"`
	// Timeout bounds one call to one node. Default 5s.
	Timeout config.Duration `yaml:"timeout"`
	// Concurrency is the most calls in flight at once per POP. Default 16.
	Concurrency int `yaml:"concurrency"`
	// File keeps the takedowns across restarts. Default: empty, filled
	// in by the origin with data_dir/takedowns.json.
	File string `yaml:"file"`
}

// POPConfig names a POP's nodes.
type POPConfig struct {
	// Name names the POP in answers and logs.
	Name string `yaml:"name"`
	// Shields and Edges are the internal listeners' base URLs.
	Shields []string `yaml:"shields"`
	Edges   []string `yaml:"edges"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{Timeout: config.Duration(5 * time.Second), Concurrency: 16}
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs config.Errors
	if c.Token != "" && len(c.Token) < 32 {
		errs.Add("token", "at least 32 characters")
	}
	if c.Timeout <= 0 {
		errs.Add("timeout", "must be positive")
	}
	if c.Concurrency < 1 {
		errs.Add("concurrency", "must be positive")
	}
	for i, p := range c.POPs {
		if p.Name == "" {
			errs.Add(fmt.Sprintf("pops[%d].name", i), "must be set")
		}
		for field, urls := range map[string][]string{"shields": p.Shields, "edges": p.Edges} {
			for j, u := range urls {
				if !baseURL(u) {
					errs.Add(fmt.Sprintf("pops[%d].%s[%d]", i, field, j), "%q is not an http base URL", u)
				}
			}
		}
	}
	return errs.Err()
}

func baseURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" && (p.Path == "" || p.Path == "/")
}

// API is the admin API. Its handler is safe for concurrent use.
type API struct {
	cfg    Config
	log    *slog.Logger
	tierKR atomic.Pointer[tierauth.Keyring]
	client *http.Client
	now    func() time.Time
	token  [32]byte // sha256 of the token: compared in constant time

	mu   sync.RWMutex
	pops []POPConfig
	down map[string]int64 // taken-down track -> unix seconds of the takedown

	reload   func() error
	purges   *prometheus.CounterVec // result
	seconds  prometheus.Histogram
	takedown atomic.Int64
}

// New builds the admin API; tier signs the calls to the nodes. reg may be
// nil.
func New(cfg Config, tier *tierauth.Keyring, logger *slog.Logger, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{
		cfg:    cfg,
		log:    logger,
		client: &http.Client{Timeout: time.Duration(cfg.Timeout)},
		now:    time.Now,
		token:  sha256.Sum256([]byte(cfg.Token)),
		pops:   cfg.POPs,
		down:   map[string]int64{},
	}
	a.tierKR.Store(tier)
	if cfg.File != "" {
		if err := a.load(); err != nil {
			return nil, err
		}
	}
	m := metric.NewSet(reg)
	a.purges = m.CounterVec("origin_admin_purges_total",
		"Admin purge and takedown calls, by result (ok, failed: a node did not confirm).", "result")
	a.seconds = m.Histogram("origin_admin_purge_duration_seconds",
		"Time from an admin purge call until every node of every POP confirmed.", prometheus.ExponentialBuckets(0.001, 2, 14))
	m.GaugeFunc("origin_takedowns", "Tracks taken down.",
		func() float64 { a.mu.RLock(); defer a.mu.RUnlock(); return float64(len(a.down)) })
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("admin: metrics: %w", err)
	}
	return a, nil
}

// SetPOPs replaces the POPs a purge reaches (cmd/pop starts the origin
// before the nodes whose addresses it then learns).
func (a *API) SetPOPs(pops []POPConfig) {
	a.mu.Lock()
	a.pops = pops
	a.mu.Unlock()
}

// SetTierKeys replaces the keyring that signs the calls to the nodes (a
// reload of tier_keys).
func (a *API) SetTierKeys(kr *tierauth.Keyring) { a.tierKR.Store(kr) }

// TakenDown reports whether the track is taken down.
func (a *API) TakenDown(id string) bool {
	if a.takedown.Load() == 0 {
		return false
	}
	a.mu.RLock()
	_, ok := a.down[id]
	a.mu.RUnlock()
	return ok
}

// Request is the body of a purge or a restore.
type Request struct {
	Tracks   []string `json:"tracks"`
	Takedown bool     `json:"takedown,omitempty"`
}

// Result is the answer of a purge.
type Result struct {
	Tracks int      `json:"tracks"`
	Nodes  int      `json:"nodes"`
	Millis int64    `json:"ms"`
	Failed []string `json:"failed,omitempty"`
}

// ServeHTTP answers POST /v1/admin/purge, /v1/admin/restore and
// /v1/admin/reload.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Token == "" {
		http.NotFound(w, r)
		return
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || auth == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="musiccdn-admin"`)
		http.Error(w, "admin token required", http.StatusUnauthorized)
		return
	}
	if sum := sha256.Sum256([]byte(auth)); subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/v1/admin/reload" {
		a.serveReload(w)
		return
	}
	req, err := decode(w, r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var res Result
	switch r.URL.Path {
	case "/v1/admin/purge":
		res, err = a.Purge(r.Context(), req.Tracks, req.Takedown)
	case "/v1/admin/restore":
		res, err = a.Restore(r.Context(), req.Tracks)
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
	}
	json.NewEncoder(w).Encode(res)
}

// OnReload sets what POST /v1/admin/reload runs (cmd/origin: read the
// configuration file again and reload it, as SIGHUP does).
func (a *API) OnReload(f func() error) { a.reload = f }

func (a *API) serveReload(w http.ResponseWriter) {
	if a.reload == nil {
		http.Error(w, "no configuration file to reload", http.StatusNotFound)
		return
	}
	if err := a.reload(); err != nil {
		// The caller holds the admin token: the file, line and field
		// at fault are what they need.
		http.Error(w, "reload refused, running configuration kept:\n"+err.Error(), http.StatusBadRequest)
		return
	}
	io.WriteString(w, "reloaded\n")
}

// decode reads and checks a request body.
func decode(w http.ResponseWriter, r *http.Request) (Request, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return Request{}, errors.New("want Content-Type: application/json")
	}
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, errors.New(`want {"tracks": ["t1", ...]} (at most 64 KiB)`)
	}
	if len(req.Tracks) == 0 || len(req.Tracks) > MaxTracks {
		return Request{}, fmt.Errorf("tracks: want 1 to %d", MaxTracks)
	}
	for _, t := range req.Tracks {
		if !catalog.ValidID(t) {
			return Request{}, fmt.Errorf("tracks: %q is not a track id", t)
		}
	}
	return req, nil
}

// Purge drops the tracks from every node of every POP (see the package
// doc); with takedown, the origin stops serving them first and edges
// refuse their older tokens. It returns an error naming the nodes that
// did not confirm.
func (a *API) Purge(ctx context.Context, tracks []string, takedown bool) (Result, error) {
	start := a.now()
	q := "tracks=" + strings.Join(tracks, ",")
	if takedown {
		if err := a.setDown(tracks, start.Unix()); err != nil {
			return Result{Tracks: len(tracks)}, err
		}
		q += "&takedown=" + strconv.FormatInt(start.Unix(), 10)
	}
	res, err := a.fanOut(ctx, "/admin/purge?"+q, true)
	res.Tracks = len(tracks)
	res.Millis = a.now().Sub(start).Milliseconds()
	a.seconds.Observe(a.now().Sub(start).Seconds())
	if err != nil {
		a.purges.WithLabelValues("failed").Inc()
		a.log.Warn("purge not confirmed by every node", "tracks", len(tracks), "failed", res.Failed)
		return res, err
	}
	a.purges.WithLabelValues("ok").Inc()
	a.log.Info("purged", "tracks", len(tracks), "takedown", takedown, "nodes", res.Nodes, "ms", res.Millis)
	return res, nil
}

// Restore lifts the takedown of the tracks at the origin and at every
// edge.
func (a *API) Restore(ctx context.Context, tracks []string) (Result, error) {
	if err := a.setUp(tracks); err != nil {
		return Result{Tracks: len(tracks)}, err
	}
	res, err := a.fanOut(ctx, "/admin/restore?tracks="+strings.Join(tracks, ","), false)
	res.Tracks = len(tracks)
	return res, err
}

// fanOut calls target on every node: per POP, the shields (if shields),
// then the edges twice; POPs concurrently.
func (a *API) fanOut(ctx context.Context, target string, shields bool) (Result, error) {
	a.mu.RLock()
	pops := a.pops
	a.mu.RUnlock()
	var (
		mu     sync.Mutex
		res    Result
		failed = map[string]bool{}
		wg     sync.WaitGroup
	)
	for _, p := range pops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rounds := [][]string{p.Edges}
			if shields {
				rounds = [][]string{p.Shields, p.Edges, p.Edges}
			}
			for _, nodes := range rounds {
				bad := a.round(ctx, nodes, target)
				mu.Lock()
				res.Nodes += len(nodes) - len(bad)
				for _, b := range bad {
					failed[b] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for f := range failed {
		res.Failed = append(res.Failed, f)
	}
	sort.Strings(res.Failed)
	if len(res.Failed) > 0 {
		return res, fmt.Errorf("admin: %d nodes did not confirm", len(res.Failed))
	}
	return res, nil
}

// round calls target on every node, at most Concurrency at once, and
// returns the nodes that did not answer 200.
func (a *API) round(ctx context.Context, nodes []string, target string) []string {
	var (
		mu  sync.Mutex
		bad []string
		wg  sync.WaitGroup
	)
	sem := make(chan struct{}, a.cfg.Concurrency)
	for _, n := range nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := a.call(ctx, n, target); err != nil {
				a.log.Warn("admin call failed", "node", n, "err", err)
				mu.Lock()
				bad = append(bad, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return bad
}

func (a *API) call(ctx context.Context, base, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+target, nil)
	if err != nil {
		return err
	}
	req.Header.Set(tierauth.Header, a.tierKR.Load().Sign(http.MethodPost, target, a.now()))
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func (a *API) setDown(tracks []string, at int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range tracks {
		a.down[t] = at
	}
	a.takedown.Store(int64(len(a.down)))
	return a.saveLocked()
}

func (a *API) setUp(tracks []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range tracks {
		delete(a.down, t)
	}
	a.takedown.Store(int64(len(a.down)))
	return a.saveLocked()
}

// saveLocked writes the takedowns to Config.File (write, then rename).
func (a *API) saveLocked() error {
	if a.cfg.File == "" {
		return nil
	}
	b, err := json.Marshal(a.down)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.cfg.File), 0o755); err != nil {
		return fmt.Errorf("admin: takedowns: %w", err)
	}
	tmp := a.cfg.File + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("admin: takedowns: %w", err)
	}
	if err := os.Rename(tmp, a.cfg.File); err != nil {
		return fmt.Errorf("admin: takedowns: %w", err)
	}
	return nil
}

func (a *API) load() error {
	b, err := os.ReadFile(a.cfg.File)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: takedowns: %w", err)
	}
	if err := json.Unmarshal(b, &a.down); err != nil {
		return fmt.Errorf("admin: takedowns %s: %w", a.cfg.File, err)
	}
	a.takedown.Store(int64(len(a.down)))
	return nil
}
