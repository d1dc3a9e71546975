package pop

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/cluster"
	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/internal/wait"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/tier"
	"github.com/musiccdn/cdn/tierauth"
	"github.com/musiccdn/cdn/urlsign"
)

// gatedSource is the synthetic catalog with a count of opens (requests
// that reached the origin's /media/) and a gate: once armed for a track,
// the next open of its audio opens the current version, then waits for
// the gate, as a slow origin would.
type gatedSource struct {
	*media.Synthetic
	opens atomic.Int64

	mu     sync.Mutex
	armed  string
	gate   chan struct{}
	opened chan struct{}
}

func (g *gatedSource) Open(ctx context.Context, id string, kbps int, kind catalog.Kind) (media.Object, media.File, error) {
	g.opens.Add(1)
	obj, f, err := g.Synthetic.Open(ctx, id, kbps, kind)
	g.mu.Lock()
	var gate chan struct{}
	if g.armed == id && kind == catalog.Audio {
		gate, g.armed = g.gate, ""
		close(g.opened)
	}
	g.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	return obj, f, err
}

// arm makes the next open of track wait until the returned release is
// called; opened is closed when it has happened.
func (g *gatedSource) arm(track string) (opened chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.gate, g.opened = track, make(chan struct{}), make(chan struct{})
	return g.opened, sync.OnceFunc(func() { close(g.gate) })
}

const testTierSecret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func startOpsPOP(t testing.TB, edit func(*Config)) (*POP, *gatedSource) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Catalog, cfg.Seed = "synthetic:1000", 3
	cfg.GossipProfile = cluster.ProfileFast
	cfg.EdgeCache, cfg.ShieldCache = 64<<20, 64<<20
	cfg.ShieldDisk = 0
	cfg.TierKeys = []tierauth.KeyConfig{{ID: "tier1", Secret: testTierSecret}}
	if edit != nil {
		edit(&cfg)
	}
	src := &gatedSource{Synthetic: media.NewSynthetic(1000, cfg.Seed)}
	p, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), WithOriginOptions(origin.WithSource(src)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, src
}

// manifestURL returns the signed edge path of track's kbps tier, asked
// as the POP's demo user of SE.
func manifestURL(t testing.TB, p *POP, track string, kbps int) (string, int) {
	t.Helper()
	u, ok := p.Addrs().UserIn("SE")
	if !ok {
		t.Fatal("no SE user in the addr file")
	}
	req, _ := http.NewRequest("GET", p.Addrs().Origin+"/v1/manifest/"+track, nil)
	req.Header.Set("Authorization", "Bearer "+u.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", resp.StatusCode
	}
	var m struct {
		Tiers []struct {
			Kbps int    `json:"kbps"`
			URL  string `json:"url"`
		} `json:"tiers"`
	}
	json.NewDecoder(resp.Body).Decode(&m)
	for _, tr := range m.Tiers {
		if tr.Kbps == kbps {
			return tr.URL, 200
		}
	}
	t.Fatalf("manifest of %s has no %d kbps tier", track, kbps)
	return "", 0
}

func getRange(t testing.TB, url string, from, to int64) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	return send(t, req)
}

// send sends req and reads the whole answer, or fails the test.
func send(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func adminCall(t testing.TB, p *POP, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.Addrs().Internal.Origin+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	code, b := send(t, req)
	return code, string(b)
}

// checkGen asserts that every edge serves bytes [from, to] of track i at
// kbps as generation gen.
func checkGen(t *testing.T, p *POP, src *gatedSource, url string, i, kbps int, gen uint64, from, to int64) {
	t.Helper()
	for _, e := range p.Addrs().Edges {
		code, b := getRange(t, e+url, from, to)
		if code != 206 {
			t.Fatalf("%s: status %d", e, code)
		}
		if j := src.Verify(b, i, kbps, gen, from); j >= 0 {
			t.Fatalf("%s: byte %d is not generation %d", e, from+int64(j), gen)
		}
	}
}

// TestPurge: a re-delivered track, purged through the origin's admin
// call, is served in its new version by every edge at once (the metadata
// TTL would otherwise keep the old one for 5 minutes); the call needs the
// admin token. Mutations caught: the fan-out skipping edges or shields
// (old bytes), tier.Server.Purge not purging the hot store (old bytes at
// a non-owner), a wrong or missing token accepted.
func TestPurge(t *testing.T) {
	p, src := startOpsPOP(t, nil)
	a := p.Addrs()
	if a.AdminToken == "" {
		t.Fatal("no admin_token in the addr file")
	}
	url, _ := manifestURL(t, p, "t7", 96)
	checkGen(t, p, src, url, 7, 96, 0, 0, 300_000)
	checkGen(t, p, src, url, 7, 96, 0, 0, 300_000) // hot stores too
	src.Republish(7)

	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong-token-wrong-token-wrong-token", 403}} {
		if code, _ := adminCall(t, p, "/v1/admin/purge", tc.token, `{"tracks":["t7"]}`); code != tc.want {
			t.Errorf("purge with token %q: %d, want %d", tc.token, code, tc.want)
		}
	}
	// Not on the public listener at all.
	resp, err := http.Post(a.Origin+"/v1/admin/purge", "application/json", strings.NewReader(`{"tracks":["t7"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 && resp.StatusCode != 405 {
		t.Errorf("public /v1/admin/purge: %d", resp.StatusCode)
	}
	if code, _ := adminCall(t, p, "/v1/admin/purge", a.AdminToken, `{"tracks":["t7","bad id"]}`); code != 400 {
		t.Errorf("purge of a bad id: %d, want 400", code)
	}
	// The refused calls purged nothing: still the old version.
	checkGen(t, p, src, url, 7, 96, 0, 0, 1000)

	code, body := adminCall(t, p, "/v1/admin/purge", a.AdminToken, `{"tracks":["t7"]}`)
	if code != 200 {
		t.Fatalf("purge: %d %s", code, body)
	}
	// 2 shields + 3 edges twice.
	if !strings.Contains(body, `"nodes":8`) {
		t.Errorf("purge answer %s, want 8 node confirmations", body)
	}
	checkGen(t, p, src, url, 7, 96, 1, 0, 300_000)
	checkGen(t, p, src, url, 7, 96, 1, 0, 300_000)
}

// TestPurgeRacingFill: a fill of the old version in flight when the purge
// runs (the origin opened version 0, then stalls) is discarded at every
// tier: after the purge returns and the fill completes, every edge serves
// version 1 only. Mutation caught: cache.Store without the purge marks
// (replaceMetaGen/unpurged always installing): the shield keeps the
// stalled fill's version-0 metadata and chunk and serves them for the
// metadata TTL.
func TestPurgeRacingFill(t *testing.T) {
	p, src := startOpsPOP(t, nil)
	a := p.Addrs()
	url, _ := manifestURL(t, p, "t11", 96)
	opened, release := src.arm("t11")
	defer release()
	type result struct {
		code int
		body []byte
	}
	inflight := make(chan result, 1)
	go func() {
		code, b := getRange(t, a.Edges[0]+url, 0, 100_000)
		inflight <- result{code, b}
	}()
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatal("the fill never reached the origin")
	}
	src.Republish(11)
	if code, body := adminCall(t, p, "/v1/admin/purge", a.AdminToken, `{"tracks":["t11"]}`); code != 200 {
		t.Fatalf("purge: %d %s", code, body)
	}
	release()
	r := <-inflight
	// The request that was in flight across the purge gets one whole
	// version or an error, never a mix.
	if r.code == 206 && src.Verify(r.body, 11, 96, 0, 0) >= 0 && src.Verify(r.body, 11, 96, 1, 0) >= 0 {
		t.Fatalf("in-flight response mixes versions")
	}
	checkGen(t, p, src, url, 11, 96, 1, 0, 100_000)
	checkGen(t, p, src, url, 11, 96, 1, 0, 600_000)
	var discarded float64
	for _, s := range p.Shields() {
		discarded += float64(s.Store().Stats.Discarded.Load())
	}
	if discarded == 0 {
		t.Error("no fill was discarded: the race did not happen as planned")
	}
}

// TestTakedown: a takedown stops the track's already-issued tokens at
// every edge (even for cached bytes), new manifests, and the origin's
// bytes, rights answers, artwork and track metadata; restore lifts it.
// Mutations caught: the revocation check removed from the hit path (206
// for the old token), the origin still issuing manifests, an edge minting
// from its pre-takedown snapshot without the revocation check (200), the origin's
// rights or track metadata built on the unwrapped rights and source
// (200/204 for the taken-down track).
func TestTakedown(t *testing.T) {
	p, src := startOpsPOP(t, nil)
	a := p.Addrs()
	url, _ := manifestURL(t, p, "t9", 64)
	checkGen(t, p, src, url, 9, 64, 0, 0, 10_000)
	code, body := adminCall(t, p, "/v1/admin/purge", a.AdminToken, `{"tracks":["t9"],"takedown":true}`)
	if code != 200 {
		t.Fatalf("takedown: %d %s", code, body)
	}
	for _, e := range a.Edges {
		if code, _ := getRange(t, e+url, 0, 10_000); code != 403 {
			t.Errorf("%s: the token issued before the takedown: %d, want 403", e, code)
		}
	}
	if _, code := manifestURL(t, p, "t9", 64); code == 200 {
		t.Error("a manifest was issued for a taken-down track")
	}
	// Nor by an edge minting from the snapshot it pulled before the
	// takedown.
	se, _ := a.UserIn("SE")
	for _, e := range a.Edges {
		req, _ := http.NewRequest("GET", e+"/v1/manifest/t9", nil)
		req.Header.Set("Authorization", "Bearer "+se.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s minted a manifest of a taken-down track: %d, want 403", e, resp.StatusCode)
		}
	}
	// The edges' prefetcher hears "denied" for it, and its metadata is
	// not served (it was not cached before the takedown: a purge drops
	// audio objects, not http route entries). Covers are per album, not
	// per track, and stay.
	tk, _ := tierauth.New([]tierauth.KeyConfig{{ID: "tier1", Secret: testTierSecret}})
	for _, target := range []string{"/v1/rights/t9?country=SE", "/v1/tracks/t9"} {
		req, _ := http.NewRequest("GET", a.Internal.Origin+target, nil)
		req.Header.Set(tierauth.Header, tk.Sign("GET", target, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 || resp.StatusCode == 204 {
			t.Errorf("origin internal %s of a taken-down track: %d", target, resp.StatusCode)
		}
	}
	for _, target := range []string{"/v1/tracks/t9"} {
		if resp, err := http.Get(a.Edges[0] + target); err != nil {
			t.Fatal(err)
		} else if resp.Body.Close(); resp.StatusCode == 200 {
			t.Errorf("edge %s of a taken-down track: 200", target)
		}
	}
	// Another track is untouched.
	other, _ := manifestURL(t, p, "t10", 64)
	checkGen(t, p, src, other, 10, 64, 0, 0, 10_000)

	if code, body := adminCall(t, p, "/v1/admin/restore", a.AdminToken, `{"tracks":["t9"]}`); code != 200 {
		t.Fatalf("restore: %d %s", code, body)
	}
	url2, code := manifestURL(t, p, "t9", 64)
	if code != 200 {
		t.Fatalf("manifest after restore: %d", code)
	}
	// The negative entries (404 from the origin during the takedown)
	// were purged with the rest, and the restore purged nothing: a fresh
	// fill may still meet a remembered 404 for negative_ttl at most.
	wait.ForState(t, 30*time.Second, "a fresh fill after the restore", func() (bool, string) {
		c, _ := getRange(t, a.Edges[0]+url2, 0, 10_000)
		return c == 206, fmt.Sprintf("status %d", c)
	})
}

// TestWarmRestart: a shield restarted with its disk tier serves what it
// held with zero requests to the origin, counted at the origin's catalog.
// Mutations caught: metadata not persisted (one origin request per
// object), the disk tier closed without flushing its queue.
func TestWarmRestart(t *testing.T) {
	p, src := startOpsPOP(t, func(c *Config) {
		c.Shields, c.Edges = 1, 2
		c.ShieldDisk = 256 << 20
	})
	a := p.Addrs()
	type obj struct {
		url string
		i   int
	}
	var objs []obj
	for i := 20; i < 26; i++ {
		u, _ := manifestURL(t, p, "t"+strconv.Itoa(i), 64)
		objs = append(objs, obj{u, i})
		code, b := getRange(t, a.Edges[0]+u, 0, 1_000_000)
		if code != 206 || src.Verify(b, i, 64, 0, 0) >= 0 {
			t.Fatalf("t%d: %d", i, code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.RestartShield(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Cold edges: every byte must come from the shield.
	for i := range p.Edges() {
		if err := p.RestartEdge(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	before := src.opens.Load()
	for _, o := range objs {
		for _, e := range a.Edges {
			code, b := getRange(t, e+o.url, 0, 1_000_000)
			if code != 206 || src.Verify(b, o.i, 64, 0, 0) >= 0 {
				t.Fatalf("t%d after restart: %d", o.i, code)
			}
		}
	}
	if n := src.opens.Load() - before; n != 0 {
		t.Errorf("%d origin requests after a warm restart, want 0", n)
	}
	// At least the objects read (prefetch warmed the next tracks' first
	// chunks too, and those came back from disk as well).
	if w := p.Shields()[0].Store().Stats.WarmMetas.Load(); w < int64(len(objs)) {
		t.Errorf("warm metadata loads %d, want at least %d", w, len(objs))
	}
}

// TestReload: a token key rotated by a reload is in force at once (the new
// key's tokens accepted, the old key's refused); a file that is invalid or
// changes a field needing a restart is refused with its line and field,
// and the running configuration stays. Mutations caught: Reload not
// swapping the keyring (old token 206), applying a refused file (the k2
// token refused afterwards), the admin endpoint without the tier
// credential.
func TestReload(t *testing.T) {
	p, _ := startOpsPOP(t, func(c *Config) { c.Edges, c.Shields = 1, 1 })
	a := p.Addrs()
	e := p.Edges()[0]
	oldURL, _ := manifestURL(t, p, "t3", 24)
	if code, _ := getRange(t, a.Edges[0]+oldURL, 0, 999); code != 206 {
		t.Fatalf("before: %d", code)
	}
	secret2 := strings.Repeat("ab", 32)
	signed := func(kid, secret string) string {
		kb, _ := hex.DecodeString(secret)
		kr, err := urlsign.NewKeyring(urlsign.Key{ID: kid, Secret: kb})
		if err != nil {
			t.Fatal(err)
		}
		return "/a/t3/24.ogg?t=" + kr.Sign("t3/24.ogg", "SE", time.Now().Add(time.Hour))
	}
	newURL := signed("k2", secret2)
	if code, _ := getRange(t, a.Edges[0]+newURL, 0, 999); code != 403 {
		t.Fatalf("k2 token before the reload: %d", code)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "edge.yaml")
	e.ReloadFrom(func() (tier.Config, error) {
		next := e.Config()
		err := config.Load(file, &next)
		return next, err
	})
	tk, _ := tierauth.New([]tierauth.KeyConfig{{ID: "tier1", Secret: testTierSecret}})
	reload := func(credential bool) (int, string) {
		req, _ := http.NewRequest("POST", a.Internal.Edges[0]+"/admin/reload", nil)
		if credential {
			req.Header.Set(tierauth.Header, tk.Sign("POST", "/admin/reload", time.Now()))
		}
		code, b := send(t, req)
		return code, string(b)
	}
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("keys:\n  - id: k2\n    secret: " + secret2 + "\n")
	if code, _ := reload(false); code != 403 {
		t.Errorf("reload without the tier credential: %d", code)
	}
	if code, body := reload(true); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if code, _ := getRange(t, a.Edges[0]+newURL, 0, 999); code != 206 {
		t.Errorf("k2 token after the rotation: %d", code)
	}
	if code, _ := getRange(t, a.Edges[0]+oldURL, 0, 999); code != 403 {
		t.Errorf("k1 token after the rotation: %d, want 403", code)
	}

	// Refused files: the line and field named, nothing changed.
	for _, bad := range []struct{ file, want string }{
		{"keys:\n  - id: k3\n    secret: zz\n", "edge.yaml:3: keys[0].secret: not hex"}, // the secret's own line
		{"country_header: X-Country\nlisten: 127.0.0.1:1\n", "listen"},
		{"keys: [\n", "edge.yaml"},
		{"cache:\n  chunk_size: 1MiB\n", "cache.chunk_size"},
	} {
		write(bad.file)
		code, body := reload(true)
		if code != 400 || !strings.Contains(body, bad.want) {
			t.Errorf("reload of %q: %d %q, want 400 naming %s", bad.file, code, body, bad.want)
		}
	}
	if code, _ := getRange(t, a.Edges[0]+newURL, 0, 999); code != 206 {
		t.Errorf("after refused reloads the k2 token: %d", code)
	}
	if e.Config().CountryHeader != "" {
		t.Error("a refused file was partly applied")
	}
	// The Go API refuses the same way.
	cfg := e.Config()
	cfg.InternalAddr = "127.0.0.1:1"
	if err := e.Reload(cfg); err == nil || !strings.Contains(err.Error(), "internal_addr") {
		t.Errorf("Reload changing internal_addr: %v", err)
	}
	// Budgets reload.
	cfg = e.Config()
	cfg.Cache.MemoryBytes = 32 << 20
	if err := e.Reload(cfg); err != nil {
		t.Errorf("Reload of cache.memory_bytes: %v", err)
	}
	if bytes.Contains([]byte(e.Config().Name), []byte(" ")) {
		t.Fatal("unreachable")
	}
}

// TestOriginReload: the origin's signing key rotates by reload (manifests
// are signed with the new key at once, which the edges refuse until they
// reload too); a file changing a restart-only field is refused through
// POST /v1/admin/reload with the field named. Mutations caught: Reload
// not swapping the keyring (the manifest still signed k1), the admin
// reload without the token.
func TestOriginReload(t *testing.T) {
	p, _ := startOpsPOP(t, func(c *Config) { c.Edges, c.Shields = 1, 1 })
	a := p.Addrs()
	o := p.Origin()
	secret2 := strings.Repeat("cd", 32)
	cfg := o.Config()
	cfg.Keys = []origin.KeyConfig{{ID: "k2", Secret: secret2}}
	if err := o.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	url, _ := manifestURL(t, p, "t3", 24)
	if !strings.Contains(url, "t=k2.") {
		t.Fatalf("manifest after the rotation: %s", url)
	}
	if code, _ := getRange(t, a.Edges[0]+url, 0, 999); code != 403 {
		t.Errorf("edge without k2: %d, want 403", code)
	}
	ec := p.Edges()[0].Config()
	ec.Keys = append(ec.Keys, tier.Key{ID: "k2", Secret: secret2})
	if err := p.Edges()[0].Reload(ec); err != nil {
		t.Fatal(err)
	}
	if code, _ := getRange(t, a.Edges[0]+url, 0, 999); code != 206 {
		t.Errorf("edge with k2: %d", code)
	}

	file := filepath.Join(t.TempDir(), "origin.yaml")
	o.Admin.OnReload(func() error {
		next := o.Config()
		if err := config.Load(file, &next); err != nil {
			return err
		}
		return o.Reload(next)
	})
	os.WriteFile(file, []byte("token_ttl: 1h\n"), 0o644)
	if code, _ := adminCall(t, p, "/v1/admin/reload", "", ""); code != 401 {
		t.Errorf("reload without the token: %d", code)
	}
	code, body := adminCall(t, p, "/v1/admin/reload", a.AdminToken, "")
	if code != 400 || !strings.Contains(body, "token_ttl") {
		t.Errorf("reload changing token_ttl: %d %q", code, body)
	}
	os.WriteFile(file, []byte("keys:\n  - id: k1b\n    secret: "+strings.Repeat("ef", 32)+"\n"), 0o644)
	if code, body := adminCall(t, p, "/v1/admin/reload", a.AdminToken, ""); code != 200 {
		t.Errorf("reload: %d %q", code, body)
	}
	if url, _ := manifestURL(t, p, "t3", 24); !strings.Contains(url, "t=k1b.") {
		t.Errorf("manifest after the file reload: %s", url)
	}
}
