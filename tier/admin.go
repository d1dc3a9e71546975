package tier

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

// The operators' endpoints of a node, on its internal listener, behind the
// tier credential (the origin's purge fan-out and operators' scripts sign
// with the POP's tier_keys; see tierauth.Keyring.Sign):
//
//	POST /admin/purge?tracks=t1,t2[&takedown=<unix s>]   drop every tier and seek table of the tracks
//	POST /admin/restore?tracks=t1,t2                      lift a takedown's token revocation
//	POST /admin/reload                                    re-read the configuration file
//
// A purge drops the tracks' objects (5 tiers x {.ogg, .seek}) from memory,
// disk and the hot store, metadata with them, and discards the fills in
// flight for them (cache.Store.Purge), so once it answers 200 the node
// serves none of the bytes it held. With takedown (an edge), the tokens
// of those tracks that expire at most takedown + token_max_ttl later,
// which is every token issued before takedown, are refused from then on
// (403, reason "revoked"). The most one request costs: maxAdminTracks
// tracks, 10 object purges each (one delete per chunk held) and one disk
// flush. A reload costs one read of the configuration file.
const maxAdminTracks = 1000

// live is the part of a node's configuration a reload replaces, read with
// one atomic load per request.
type live struct {
	cfg           Config
	keys          *urlsign.Keyring // edge only
	countryHeader string
	maxTTL        int64 // TokenMaxTTL in seconds
}

func newLive(cfg Config) (*live, error) {
	lv := &live{cfg: cfg, countryHeader: cfg.CountryHeader, maxTTL: int64(time.Duration(cfg.TokenMaxTTL) / time.Second)}
	if cfg.Role == Edge && cfg.hasAudio() {
		var err error
		if lv.keys, err = cfg.Keyring(); err != nil {
			return nil, err
		}
	}
	return lv, nil
}

// newTierKeyring is the keyring of keys, nil without keys (a node with
// only http routes to outside upstreams: Validate requires tier_keys
// everywhere else).
func newTierKeyring(keys []tierauth.KeyConfig) (*tierauth.Keyring, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	return tierauth.New(keys)
}

// Config is the configuration in force (the last one reloaded).
func (s *Server) Config() Config { return s.live.Load().cfg }

// OnReload sets what POST /admin/reload (and SIGHUP, through daemon.Run)
// runs: typically, load the configuration file again and Reload it. Call
// it before Serve.
func (s *Server) OnReload(f func() error) { s.reload = f }

// ReloadConfig runs what OnReload set (daemon.Run calls it on SIGHUP);
// a refusal is logged and counted, and the running configuration stays.
func (s *Server) ReloadConfig() error {
	if s.reload == nil {
		return errors.New("tier: no configuration file to reload")
	}
	if err := s.reload(); err != nil {
		s.reloadErr.Add(1)
		s.log.Warn("reload refused, running configuration kept", "err", err)
		return err
	}
	return nil
}

// reloadable are the fields a reload may change, by YAML path; any other
// difference needs a restart and makes Reload refuse the whole file.
var reloadable = map[string]bool{
	"keys":                   true,
	"tier_keys":              true,
	"country_header":         true,
	"token_max_ttl":          true,
	"cache.memory_bytes":     true,
	"hot_cache.memory_bytes": true,
	"cluster.secret_keys":    true,
}

// Reload puts cfg in force without a restart: token keys, tier keys, the
// country header, token_max_ttl and the memory budgets (a Node also
// swaps the gossip keyring). cfg is validated first and compared with the
// running configuration: an invalid cfg, or one that changes a field
// that needs a restart (listeners, role, chunk size, disk, upstreams...),
// is refused with the field named, and the running configuration stays.
func (s *Server) Reload(cfg Config) error {
	if err := s.checkReload(cfg); err != nil {
		return err
	}
	return s.applyReload(cfg)
}

func (s *Server) checkReload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	var errs []error
	for _, f := range diffFields(reflect.ValueOf(s.Config()), reflect.ValueOf(cfg), "") {
		if !reloadable[f] {
			errs = append(errs, config.Errorf(f, "changed: needs a restart (a reload changes only %s)", reloadableList()))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) applyReload(cfg Config) error {
	lv, err := newLive(cfg)
	if err != nil {
		return err
	}
	tk, err := newTierKeyring(cfg.TierKeys)
	if err != nil {
		return config.Prefix("tier_keys", err)
	}
	old := s.Config()
	if cfg.Cache.MemoryBytes != old.Cache.MemoryBytes {
		if err := s.store.SetMemoryBytes(int64(cfg.Cache.MemoryBytes)); err != nil {
			return config.Prefix("cache", config.Errorf("memory_bytes", "%v", err))
		}
	}
	if s.hot != nil && cfg.HotCache.MemoryBytes != old.HotCache.MemoryBytes {
		if err := s.hot.SetMemoryBytes(int64(cfg.HotCache.MemoryBytes)); err != nil {
			return config.Prefix("hot_cache", config.Errorf("memory_bytes", "%v", err))
		}
	}
	s.tierAuth.Store(tk)
	s.live.Store(lv)
	s.reloads.Add(1)
	s.log.Info("configuration reloaded")
	return nil
}

func reloadableList() string {
	var l []string
	for k := range reloadable {
		l = append(l, k)
	}
	// Stable text for the operator.
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[j] < l[i] {
				l[i], l[j] = l[j], l[i]
			}
		}
	}
	return strings.Join(l, ", ")
}

// diffFields returns the YAML paths of the fields that differ between a
// and b (structs of one type), descending into nested structs.
func diffFields(a, b reflect.Value, prefix string) []string {
	var out []string
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		av, bv := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Struct && !reloadable[path] {
			if sub := diffFields(av, bv, path); len(sub) > 0 {
				out = append(out, sub...)
			}
			continue
		}
		if !reflect.DeepEqual(av.Interface(), bv.Interface()) {
			out = append(out, path)
		}
	}
	return out
}

// Purge drops every tier and seek table of the tracks from the node's
// stores (memory, disk, hot store), discarding fills in flight; it
// returns the number of objects purged. With a non-zero takedown time,
// an edge also refuses from then on every token of those tracks issued
// before it (see the admin endpoints above).
func (s *Server) Purge(tracks []string, takedown time.Time) int {
	names := make([][]byte, 0, len(tracks)*len(catalog.Tiers)*2)
	for _, t := range tracks {
		for _, kbps := range catalog.Tiers {
			names = append(names, []byte(t+"/"+strconv.Itoa(kbps)+".ogg"), []byte(t+"/"+strconv.Itoa(kbps)+".seek"))
		}
	}
	if !takedown.IsZero() && s.cfg.Role == Edge {
		// Revoke first: from here no token of these tracks issued
		// before the takedown opens anything, cached or not.
		s.revoke(tracks, takedown.Unix()+s.live.Load().maxTTL)
	}
	s.store.Purge(names...)
	if s.hot != nil {
		s.hot.Purge(names...)
	}
	s.purges.Add(int64(len(tracks)))
	return len(names)
}

// Restore lifts the token revocation of the tracks (a takedown undone).
func (s *Server) Restore(tracks []string) {
	s.revokeMu.Lock()
	defer s.revokeMu.Unlock()
	old := *s.revoked.Load()
	next := make(map[string]int64, len(old))
	for k, v := range old {
		next[k] = v
	}
	for _, t := range tracks {
		delete(next, t)
	}
	s.revoked.Store(&next)
}

// revoke refuses tokens of tracks expiring at or before cut. The map is
// copied on write (takedowns are rare, reads are every request) and
// entries whose cut has passed are dropped: every token they could
// refuse has expired.
func (s *Server) revoke(tracks []string, cut int64) {
	s.revokeMu.Lock()
	defer s.revokeMu.Unlock()
	now := s.now().Unix()
	old := *s.revoked.Load()
	next := make(map[string]int64, len(old)+len(tracks))
	for k, v := range old {
		if v >= now {
			next[k] = v
		}
	}
	for _, t := range tracks {
		next[t] = max(next[t], cut)
	}
	s.revoked.Store(&next)
}

// Handoffs returns the handoff fills this edge tried and those the
// previous holder answered (see PeerPicker.Handoff).
func (s *Server) Handoffs() (tried, answered int64) {
	return s.fetch.handoffs.Load(), s.fetch.handoffHits.Load()
}

// Revoked is the number of tracks whose tokens are being refused.
func (s *Server) Revoked() int { return len(*s.revoked.Load()) }

var adminPath = []byte("/admin/")

// serveAdmin answers the operators' endpoints (tier credential checked
// by the caller).
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx, what []byte) {
	if !ctx.IsPost() {
		ctx.Response.Header.Set("Allow", "POST")
		ctx.Error("method not allowed\n", fasthttp.StatusMethodNotAllowed)
		return
	}
	switch string(what) {
	case "purge", "restore":
		tracks, err := parseTracks(ctx.QueryArgs().Peek("tracks"))
		if err != nil {
			ctx.Error(err.Error()+"\n", fasthttp.StatusBadRequest)
			return
		}
		if string(what) == "restore" {
			s.Restore(tracks)
			ctx.SetBodyString("restored\n")
			return
		}
		var takedown time.Time
		if v := ctx.QueryArgs().Peek("takedown"); len(v) > 0 {
			sec, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || sec <= 0 {
				ctx.Error("takedown: want unix seconds\n", fasthttp.StatusBadRequest)
				return
			}
			takedown = time.Unix(sec, 0)
		}
		n := s.Purge(tracks, takedown)
		fmt.Fprintf(ctx, "purged %d objects\n", n)
	case "reload":
		if s.reload == nil {
			ctx.Error("no configuration file to reload\n", fasthttp.StatusNotFound)
			return
		}
		if err := s.ReloadConfig(); err != nil {
			// The caller is an operator holding the tier credential:
			// the file, line and field at fault are what they need.
			ctx.Error("reload refused, running configuration kept:\n"+err.Error()+"\n", fasthttp.StatusBadRequest)
			return
		}
		ctx.SetBodyString("reloaded\n")
	default:
		ctx.Error("not found\n", fasthttp.StatusNotFound)
	}
}

// parseTracks parses "t1,t2,..." (1 to maxAdminTracks valid track ids).
func parseTracks(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, errors.New("tracks: want t1,t2,...")
	}
	var out []string
	seen := map[string]bool{}
	for part := range bytes.SplitSeq(b, []byte{','}) {
		id := string(part)
		if !catalog.ValidID(id) {
			return nil, fmt.Errorf("tracks: %q is not a track id", id)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
		if len(out) > maxAdminTracks {
			return nil, fmt.Errorf("tracks: at most %d per call", maxAdminTracks)
		}
	}
	return out, nil
}
