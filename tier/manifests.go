package tier

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/hmacring"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/manifest"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/tierauth"
)

// ManifestConfig makes an edge mint playback manifests itself, from a
// catalog and rights snapshot it pulls from the origin (package
// manifest), so that listeners keep starting tracks while the origin is
// unreachable.
type ManifestConfig struct {
	// Enabled serves GET /v1/manifest/<track>?country=CC on the edge's
	// public listener. Default false.
	Enabled bool `yaml:"enabled"`
	// OriginURL is the base URL of the origin's internal listener, where
	// GET /v1/snapshot is pulled with the tier credential. Required when
	// enabled.
	OriginURL string `yaml:"origin_url"`
	// Refresh is how often the snapshot is pulled (and retried after a
	// failure). A rights or catalog change reaches the edge within it.
	// Default 1m.
	Refresh config.Duration `yaml:"refresh"`
	// MaxAge is how long a snapshot is used when no newer one can be
	// pulled: past it manifests are 503 rather than minted from rights
	// that may have changed. It bounds how late a licence's end is
	// honoured during an origin outage. Default 1h.
	MaxAge config.Duration `yaml:"max_age"`
	// TokenTTL is the lifetime of the minted URLs' tokens; at most
	// token_max_ttl. Default 6h (the origin's token_ttl).
	TokenTTL config.Duration `yaml:"token_ttl"`
	// Identity verifies the listeners' bearer tokens (the identity
	// provider's public keys, as the origin's identity section): a
	// manifest needs a session, and the country is the token's.
	// Required when enabled.
	Identity identity.Config `yaml:"identity"`
	// TicketKeys mint the manifests' play tickets: this POP's own key(s),
	// ids distinct from every other POP's and from the origin's, the
	// first minting (hex secrets of at least 32 bytes). The origin's
	// ticket_keys list them after its own, so the plays stage accepts
	// them; removing a POP's key id there revokes every ticket that POP
	// minted (a compromised edge can forge plays only under its own POP's
	// key id, and never holds the origin's). Required when enabled.
	TicketKeys []Key `yaml:"ticket_keys"`
}

// DefaultManifestConfig returns the defaults.
func DefaultManifestConfig() ManifestConfig {
	return ManifestConfig{
		Refresh:  config.Duration(time.Minute),
		MaxAge:   config.Duration(time.Hour),
		TokenTTL: config.Duration(6 * time.Hour),
	}
}

// Validate reports every invalid field.
func (c ManifestConfig) Validate(tokenMaxTTL config.Duration) error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if u, err := url.Parse(c.OriginURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, config.Errorf("origin_url", "%q is not the origin's internal base URL", c.OriginURL))
	}
	if c.Refresh < config.Duration(time.Second) {
		errs = append(errs, config.Errorf("refresh", "must be at least 1s"))
	}
	if c.MaxAge < c.Refresh {
		errs = append(errs, config.Errorf("max_age", "must be at least refresh"))
	}
	if c.TokenTTL <= 0 || c.TokenTTL > tokenMaxTTL {
		errs = append(errs, config.Errorf("token_ttl", "must be positive and at most token_max_ttl (%v)", time.Duration(tokenMaxTTL)))
	}
	if len(c.Identity.PublicKeys) == 0 {
		errs = append(errs, config.Errorf("identity.public_keys", "required: manifests need the listener's session"))
	} else {
		errs = append(errs, config.Prefix("identity", c.Identity.Validate()))
	}
	if len(c.TicketKeys) == 0 {
		errs = append(errs, config.Errorf("ticket_keys", "required: this POP's play ticket key"))
	} else if _, err := c.ticketKeyring(); err != nil {
		errs = append(errs, config.Prefix("ticket_keys", err))
	}
	return errors.Join(errs...)
}

func (c ManifestConfig) ticketKeyring() (*playticket.Keyring, error) {
	keys, err := hmacring.Decode(c.TicketKeys, playticket.MinSecretLen)
	if err != nil {
		return nil, err
	}
	return playticket.NewKeyring(keys...)
}

// manifests holds the current snapshot and pulls new ones.
type manifests struct {
	s       *Server
	cfg     ManifestConfig
	users   *identity.Verifier
	tickets *playticket.Keyring
	client  *http.Client
	snap    atomic.Pointer[manifest.Snapshot]
	pullMu  sync.Mutex   // one pull at a time
	etag    string       // of snap, for If-None-Match; guarded by pullMu
	fresh   atomic.Int64 // when the origin last gave or confirmed snap, unix ns (this node's clock)
	stop    chan struct{}
	done    chan struct{}

	pulls, pullFailures atomic.Int64
	served              [5]atomic.Int64 // 200, 403, 404, 503, 401
}

func newManifests(s *Server, cfg ManifestConfig) (*manifests, error) {
	users, err := identity.NewVerifier(cfg.Identity)
	if err != nil {
		return nil, fmt.Errorf("manifest.identity: %w", err)
	}
	tickets, err := cfg.ticketKeyring()
	if err != nil {
		return nil, fmt.Errorf("manifest.ticket_keys: %w", err)
	}
	tr := &http.Transport{TLSClientConfig: s.fillTLS, DisableCompression: true, MaxIdleConnsPerHost: 1}
	return &manifests{s: s, cfg: cfg, users: users, tickets: tickets, client: &http.Client{Transport: tr, Timeout: time.Minute},
		stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// run pulls a snapshot now and every Refresh until close.
func (m *manifests) run() {
	defer close(m.done)
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := m.pull(ctx)
		cancel()
		if err != nil {
			m.pullFailures.Add(1)
			m.s.warn.log(m.s.log, m.s.now(), m.cfg.OriginURL, "manifest snapshot pull failed; minting from the last one", "err", err)
		}
		t := time.NewTimer(time.Duration(m.cfg.Refresh))
		select {
		case <-t.C:
		case <-m.stop:
			t.Stop()
			return
		}
	}
}

func (m *manifests) pull(ctx context.Context) error {
	m.pullMu.Lock()
	defer m.pullMu.Unlock()
	m.pulls.Add(1)
	base := strings.TrimSuffix(m.cfg.OriginURL, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+snapshotPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set(tierauth.Header, m.s.tierAuth.Load().Sign(http.MethodGet, snapshotPath, m.s.now()))
	req.Header.Set("Accept-Encoding", "gzip")
	if m.etag != "" && m.snap.Load() != nil {
		req.Header.Set("If-None-Match", m.etag)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		m.fresh.Store(m.s.now().UnixNano())
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: status %d", base, snapshotPath, resp.StatusCode)
	}
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return fmt.Errorf("%s%s: %w", base, snapshotPath, err)
		}
		body = zr
	}
	snap, err := manifest.Decode(io.LimitReader(body, maxSnapshot))
	if err != nil {
		return fmt.Errorf("%s%s: %w", base, snapshotPath, err)
	}
	if old := m.snap.Load(); old != nil && snap.Taken.Before(old.Taken) {
		return nil // an older one (another origin instance lagging): keep ours
	}
	m.snap.Store(snap)
	m.etag = resp.Header.Get("ETag")
	m.fresh.Store(m.s.now().UnixNano())
	return nil
}

// snapshotPath is origin.SnapshotPath (not imported: the origin package
// carries the plays pipeline's dependencies).
const snapshotPath = "/v1/snapshot"

// maxSnapshot bounds a decompressed snapshot body.
const maxSnapshot = 4 << 30

func (m *manifests) close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// loaded reports whether a snapshot young enough to mint from is held:
// the origin gave or confirmed it within MaxAge (by this node's clock,
// so no clock skew between nodes matters).
func (m *manifests) loaded() bool {
	return m.snap.Load() != nil && m.age() <= time.Duration(m.cfg.MaxAge)
}

// age is the time since the origin last gave or confirmed the snapshot.
func (m *manifests) age() time.Duration {
	return m.s.now().Sub(time.Unix(0, m.fresh.Load()))
}

// serve answers GET /v1/manifest/<track>: the endpoint of the origin's
// public API, minted here. Any player may call it (on the public
// listener) with its session (Authorization: Bearer <JWT>, verified
// with the identity provider's public keys; the country is the
// token's, and a ?country= naming another is a 400, as at the origin).
// The most it costs: one Ed25519 verification, one binary search, one
// bitmap test, a signature per file (about ten) and one play ticket.
func (m *manifests) serve(ctx *fasthttp.RequestCtx, id []byte) {
	code := m.mint(ctx, string(id))
	switch code {
	case fasthttp.StatusOK:
		m.served[0].Add(1)
	case fasthttp.StatusForbidden:
		m.served[1].Add(1)
	case fasthttp.StatusNotFound:
		m.served[2].Add(1)
	case fasthttp.StatusServiceUnavailable:
		m.served[3].Add(1)
	case fasthttp.StatusUnauthorized:
		m.served[4].Add(1)
	}
}

func (m *manifests) mint(ctx *fasthttp.RequestCtx, id string) int {
	if !ctx.IsGet() {
		ctx.Response.Header.Set("Allow", "GET")
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		return fasthttp.StatusMethodNotAllowed
	}
	now := m.s.now()
	user, err := m.user(ctx, now)
	if err != nil {
		if errors.Is(err, identity.ErrNoToken) {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="musiccdn"`)
		} else {
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="musiccdn", error="invalid_token"`)
		}
		ctx.Error("unauthorized\n", fasthttp.StatusUnauthorized)
		return fasthttp.StatusUnauthorized
	}
	if !catalog.ValidID(id) {
		ctx.Error("bad track id\n", fasthttp.StatusBadRequest)
		return fasthttp.StatusBadRequest
	}
	if cc := ctx.QueryArgs().Peek("country"); len(cc) > 0 && string(cc) != user.Country {
		ctx.Error("country differs from the session's\n", fasthttp.StatusBadRequest)
		return fasthttp.StatusBadRequest
	}
	cc := user.Country
	// A track taken down here (POST /admin/purge with takedown) gets no
	// manifest even from a snapshot pulled before the takedown: the
	// origin's next snapshot denies it everywhere, and until then the
	// revocation map, which outlives the snapshot's refresh, says so.
	if cut, ok := (*m.s.revoked.Load())[id]; ok && now.Unix() <= cut {
		ctx.Error("not licensed in this country\n", fasthttp.StatusForbidden)
		return fasthttp.StatusForbidden
	}
	snap := m.snap.Load()
	if snap == nil || !m.loaded() {
		ctx.Error("manifests unavailable\n", fasthttp.StatusServiceUnavailable)
		return fasthttp.StatusServiceUnavailable
	}
	man, err := snap.Manifest(id, cc, now, m.s.live.Load().keys, time.Duration(m.cfg.TokenTTL))
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		ctx.Error("not found\n", fasthttp.StatusNotFound)
		return fasthttp.StatusNotFound
	case errors.Is(err, manifest.ErrDenied):
		ctx.Error("not licensed in this country\n", fasthttp.StatusForbidden)
		return fasthttp.StatusForbidden
	case err != nil:
		ctx.Error("internal error\n", fasthttp.StatusInternalServerError)
		return fasthttp.StatusInternalServerError
	}
	man.PlayID = playticket.NewID(now)
	if man.PlayTicket, err = m.tickets.Mint(playticket.Claims{PlayID: man.PlayID, UserID: user.ID, TrackID: id, Country: cc,
		IssuedMS: now.UnixMilli(), DurationMS: man.DurationMS}); err != nil {
		ctx.Error("internal error\n", fasthttp.StatusInternalServerError)
		return fasthttp.StatusInternalServerError
	}
	ctx.SetContentType("application/json")
	// The body holds bearer tokens: no shared cache may keep it.
	ctx.Response.Header.Set("Cache-Control", "private, no-store")
	json.NewEncoder(ctx).Encode(man)
	return fasthttp.StatusOK
}

// user verifies the request's bearer token.
func (m *manifests) user(ctx *fasthttp.RequestCtx, now time.Time) (identity.User, error) {
	all := ctx.Request.Header.PeekAll("Authorization")
	h := make(http.Header, 1)
	for _, v := range all {
		h.Add("Authorization", string(v))
	}
	tok, err := identity.BearerToken(h)
	if err != nil {
		return identity.User{}, err
	}
	return m.users.Verify(tok, now)
}

// WaitManifests returns once the edge holds a snapshot to mint from,
// pulling one now if it has none (for tests and start-up scripts); nil at
// once for a node that does not mint manifests.
func (s *Server) WaitManifests(ctx context.Context) error {
	if s.manifests == nil || s.manifests.loaded() {
		return nil
	}
	return s.manifests.pull(ctx)
}
