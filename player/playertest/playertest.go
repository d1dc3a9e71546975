// Package playertest is a stand-in for the byte path in player tests: one
// httptest server that acts as an edge (/a/<track>/<kbps>.ogg|.seek) in
// front of the real origin (package origintest, over a directory catalog
// built by ingest), and as the origin's public API (manifests, play
// events, licences). The edge checks its own simple token, counts
// requests, records the X-Next-Tracks it is sent and optionally limits
// bandwidth, then passes the request to the origin's /media/ with the tier
// credential: ranges, ETags and 416s are the origin's own. Manifests are
// the origin's too, with each URL's token replaced by the edge's. It also
// builds test catalogs with ingest from a deterministic signal.
package playertest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/ingest"
	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/origintest"
	"github.com/musiccdn/cdn/player/plays"
	"github.com/musiccdn/cdn/player/wav"
	"github.com/musiccdn/cdn/playticket"
)

// Server is the stand-in edge and public API. Like the origin, it wants
// the bearer token of its identity provider on manifests, licences and
// plays; Token is one for user UserID in SE.
type Server struct {
	*httptest.Server
	// Origin is the real origin behind the edge.
	Origin  *origintest.Origin
	Licence *licence.Handler
	// Token is a bearer token for UserID, country SE, valid for a day.
	Token  string
	UserID string
	users  *identity.Verifier
	media  *httputil.ReverseProxy // the edge's fill from Origin's /media/

	// Requests counts edge requests (/a/...); Ranges those with a Range
	// header.
	Requests, Ranges atomic.Int64
	// BytesPerSecond limits each edge response's rate when > 0.
	BytesPerSecond atomic.Int64
	// FailPlays makes POST /v1/plays answer 503 while set.
	FailPlays atomic.Bool

	mu        sync.Mutex
	token     string // the only token edges accept; RotateToken changes it
	nextSeen  []string
	plays     []plays.Event
	seenPlay  map[string]bool // play ids in plays
	playPosts int
}

// NewServer serves the catalog in dir (see Catalog) until the test ends.
func NewServer(t testing.TB, dir string) *Server {
	t.Helper()
	cat, err := media.OpenDir(dir)
	if err != nil {
		t.Fatalf("playertest: %v", err)
	}
	o := origintest.Start(t, origintest.Config{Source: cat})
	_, priv, _ := ed25519.GenerateKey(nil)
	tok, err := o.Issuer.Issue(identity.User{ID: "listener", Country: "SE"}, 24*time.Hour)
	if err != nil {
		t.Fatalf("playertest: %v", err)
	}
	lc := licence.DefaultConfig(priv)
	lc.Sessions, lc.Tickets = o.Server.Users(), o.Server.Tickets()
	lc.Track = func(ctx context.Context, id string) (int64, error) {
		tr, err := cat.Track(ctx, id)
		return tr.DurationMS, err
	}
	lh, err := licence.New(lc)
	if err != nil {
		t.Fatalf("playertest: %v", err)
	}
	up, err := url.Parse(o.URL)
	if err != nil {
		t.Fatalf("playertest: %v", err)
	}
	s := &Server{Origin: o, Licence: lh, token: "tok0", Token: tok, UserID: "listener", users: o.Server.Users(), seenPlay: map[string]bool{}}
	s.media = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.URL.Path = catalog.MediaPrefix + pr.In.PathValue("id") + "/" + pr.In.PathValue("file")
			pr.Out.URL.RawPath, pr.Out.URL.RawQuery = "", ""
			o.Sign(pr.Out)
		},
		ErrorLog: log.New(io.Discard, "", 0), // a player that hangs up is normal
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/manifest/{id}", s.manifest)
	mux.HandleFunc("GET /a/{id}/{file}", s.edge)
	mux.HandleFunc("POST /v1/plays", s.postPlays)
	mux.Handle("/v1/licences", lh)
	mux.Handle("/v1/licences/key", lh)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Tickets is the play-ticket keyring of the manifests and licences, to
// check reported plays with.
func (s *Server) Tickets() *playticket.Keyring { return s.Origin.Server.Tickets() }

// RotateToken makes every URL handed out so far invalid (403), as expiry
// does; new manifests carry the new token.
func (s *Server) RotateToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = "tok" + strconv.Itoa(len(s.token))
}

func (s *Server) currentToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// Plays returns the acknowledged play events, each play id once: a retry
// of a report whose answer was lost (the player cancelled the POST after
// the server took it) is counted once, as the origin's pipeline counts it.
func (s *Server) Plays() []plays.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]plays.Event(nil), s.plays...)
}

// NextTracks returns the X-Next-Tracks values seen, in order.
func (s *Server) NextTracks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.nextSeen...)
}

// manifest asks the origin's public API for the manifest, with the
// player's session, and replaces each URL's token with the edge's.
func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, s.Origin.PublicURL+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "origin unavailable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var m api.Manifest
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		// The origin's refusal (401, 400, 404, ...) as it gave it.
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	tok := s.currentToken()
	for i := range m.Tiers {
		m.Tiers[i].URL = retoken(m.Tiers[i].URL, tok)
		m.Tiers[i].SeekURL = retoken(m.Tiers[i].SeekURL, tok)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(m)
}

// retoken replaces the ?t= of an edge path with tok ("" stays "").
func retoken(path, tok string) string {
	if path == "" {
		return ""
	}
	p, _, _ := strings.Cut(path, "?")
	return p + "?t=" + tok
}

func (s *Server) edge(w http.ResponseWriter, r *http.Request) {
	id, file := r.PathValue("id"), r.PathValue("file")
	s.Requests.Add(1)
	if r.Header.Get("Range") != "" {
		s.Ranges.Add(1)
	}
	if nt := r.Header.Get(catalog.HeaderNextTracks); nt != "" {
		s.mu.Lock()
		s.nextSeen = append(s.nextSeen, id+">"+nt)
		s.mu.Unlock()
	}
	if !catalog.ValidID(id) || r.URL.Query().Get("t") != s.currentToken() || strings.Contains(file, "/") {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	var out http.ResponseWriter = w
	if bps := s.BytesPerSecond.Load(); bps > 0 {
		out = &throttled{ResponseWriter: w, bps: bps, start: time.Now()}
	}
	s.media.ServeHTTP(out, r)
}

// throttled paces writes to bps bytes per second (an emulated slow link,
// not a synchronisation).
type throttled struct {
	http.ResponseWriter
	bps   int64
	n     int64
	start time.Time
}

func (t *throttled) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), 2048)
		n, err := t.ResponseWriter.Write(p[:k])
		written += n
		t.n += int64(n)
		if err != nil {
			return written, err
		}
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		due := t.start.Add(time.Duration(float64(t.n) / float64(t.bps) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		p = p[k:]
	}
	return written, nil
}

func (t *throttled) Unwrap() http.ResponseWriter { return t.ResponseWriter }

func (s *Server) postPlays(w http.ResponseWriter, r *http.Request) {
	if _, err := s.users.FromRequest(r, time.Now()); err != nil {
		identity.Unauthorized(w, err)
		return
	}
	var evs []plays.Event
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&evs); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if s.FailPlays.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	for _, e := range evs {
		if !s.seenPlay[e.PlayID] {
			s.seenPlay[e.PlayID] = true
			s.plays = append(s.plays, e)
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// Signal is the deterministic test signal at frame i (44.1 kHz stereo): a
// slow sine on the left and a ramp-modulated sine on the right, continuous
// across any split.
func Signal(i int) (l, r float32) {
	t := float64(i) / 44100
	return float32(0.5 * math.Sin(2*math.Pi*330*t)), float32(0.3 * math.Sin(2*math.Pi*(220+20*t)*t))
}

// Catalog ingests len(lengths) tracks named ids, cut from one continuous
// Signal at the given frame lengths, into dir (created).
func Catalog(ctx context.Context, dir string, ids []string, lengths []int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	in, err := ingest.New(ingest.DefaultConfig(dir))
	if err != nil {
		return err
	}
	src, err := os.MkdirTemp("", "playertest-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	at := 0
	for k, id := range ids {
		path := filepath.Join(src, id+".wav")
		if err := WriteSignal(path, at, lengths[k]); err != nil {
			return err
		}
		at += lengths[k]
		if _, err := in.Ingest(ctx, id, path); err != nil {
			return err
		}
	}
	return nil
}

// WriteSignal writes frames [from, from+n) of Signal to path as a 44.1
// kHz stereo WAV file.
func WriteSignal(path string, from, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := wav.NewWriter(f, 44100, 2)
	if err != nil {
		return err
	}
	p := make([]float32, 2*n)
	for i := range n {
		p[2*i], p[2*i+1] = Signal(from + i)
	}
	if err := w.Write(p); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}

// RequireOggenc skips t when oggenc (Debian package vorbis-tools, which
// ingest runs) is missing, except under CI (CI set), where
// scripts/test.sh installs it and its absence fails t.
func RequireOggenc(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("oggenc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("oggenc not installed (Debian package vorbis-tools): scripts/test.sh installs it")
		}
		t.Skip("oggenc not installed (Debian package vorbis-tools)")
	}
}
