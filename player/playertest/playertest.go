// Package playertest is a stand-in for the byte path in player tests: one
// httptest server that acts as origin (manifests from a directory catalog,
// play events, licences) and edge (/a/<track>/<kbps>.ogg|.seek with RFC
// 9110 ranges through http.ServeContent), counting requests, recording the
// X-Next-Tracks it is sent, and optionally limiting bandwidth. It also
// builds test catalogs with ingest from a deterministic signal.
package playertest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/ingest"
	"github.com/musiccdn/cdn/origin/licence"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/player/plays"
	"github.com/musiccdn/cdn/player/wav"
	"github.com/musiccdn/cdn/playticket"
)

// Server is the fake origin and edge. Like the origin, it wants the
// bearer token of its identity provider on manifests, licences and plays;
// Token is one for user UserID in SE.
type Server struct {
	*httptest.Server
	dir     string
	Licence *licence.Handler
	// Token is a bearer token for UserID, country SE, valid for a day.
	Token   string
	UserID  string
	users   *identity.Verifier
	tickets *playticket.Keyring

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

// NewServer serves the catalog in dir.
func NewServer(dir string) *Server {
	_, priv, _ := ed25519.GenerateKey(nil)
	idp, err := identity.NewIssuer()
	if err != nil {
		panic(err)
	}
	users, err := identity.NewVerifier(identity.Config{PublicKeys: []string{idp.PublicKey()}})
	if err != nil {
		panic(err)
	}
	tickets, err := playticket.NewKeyring(playticket.Key{ID: "pt", Secret: []byte("playertest-ticket-secret-0123456789abcdef")})
	if err != nil {
		panic(err)
	}
	tok, err := idp.Issue(identity.User{ID: "listener", Country: "SE"}, 24*time.Hour)
	if err != nil {
		panic(err)
	}
	lc := licence.DefaultConfig(priv)
	lc.Sessions, lc.Tickets = users, tickets
	lc.Track = func(_ context.Context, id string) (int64, error) {
		m, err := readMeta(dir, id)
		return m.DurationMS, err
	}
	lh, err := licence.New(lc)
	if err != nil {
		panic(err)
	}
	s := &Server{dir: dir, Licence: lh, token: "tok0", Token: tok, UserID: "listener", users: users, tickets: tickets, seenPlay: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/manifest/{id}", s.manifest)
	mux.HandleFunc("GET /a/{id}/{file}", s.edge)
	mux.HandleFunc("POST /v1/plays", s.postPlays)
	mux.Handle("/v1/licences", lh)
	mux.Handle("/v1/licences/key", lh)
	s.Server = httptest.NewServer(mux)
	return s
}

// Tickets is the play-ticket keyring of the manifests and licences, to
// check reported plays with.
func (s *Server) Tickets() *playticket.Keyring { return s.tickets }

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

// readMeta reads a catalog track's metadata; media.ErrNotFound if absent.
func readMeta(dir, id string) (catalog.TrackInfo, error) {
	var m catalog.TrackInfo
	if !catalog.ValidID(id) {
		return m, media.ErrNotFound
	}
	b, err := os.ReadFile(filepath.Join(dir, id, catalog.TrackInfoFile))
	if err != nil {
		return m, media.ErrNotFound
	}
	err = json.Unmarshal(b, &m)
	return m, err
}

func (s *Server) manifest(w http.ResponseWriter, r *http.Request) {
	user, err := s.users.FromRequest(r, time.Now())
	if err != nil {
		identity.Unauthorized(w, err)
		return
	}
	id := r.PathValue("id")
	if !catalog.ValidID(id) {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	m, err := readMeta(s.dir, id)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	out := api.Manifest{TrackID: id, DurationMS: m.DurationMS, Samples: m.Samples, SampleRate: m.SampleRate,
		Country: user.Country, Expires: time.Now().Add(time.Hour).Unix()}
	now := time.Now()
	out.PlayID = playticket.NewID(now)
	out.PlayTicket, _ = s.tickets.Mint(playticket.Claims{PlayID: out.PlayID, UserID: user.ID, TrackID: id, Country: user.Country, IssuedMS: now.UnixMilli(), DurationMS: m.DurationMS})
	tok := s.currentToken()
	for _, k := range m.Tiers {
		fi, err := os.Stat(filepath.Join(s.dir, id, fmt.Sprintf("%d.ogg", k)))
		if err != nil {
			continue
		}
		out.Tiers = append(out.Tiers, api.Tier{Kbps: k, Bytes: fi.Size(), ETag: `"` + strconv.FormatInt(fi.ModTime().UnixNano(), 36) + `"`,
			URL: fmt.Sprintf("/a/%s/%d.ogg?t=%s", id, k, tok), SeekURL: fmt.Sprintf("/a/%s/%d.seek?t=%s", id, k, tok)})
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

func (s *Server) edge(w http.ResponseWriter, r *http.Request) {
	id, file := r.PathValue("id"), r.PathValue("file")
	s.Requests.Add(1)
	if r.Header.Get("Range") != "" {
		s.Ranges.Add(1)
	}
	if nt := r.Header.Get("X-Next-Tracks"); nt != "" {
		s.mu.Lock()
		s.nextSeen = append(s.nextSeen, id+">"+nt)
		s.mu.Unlock()
	}
	if !catalog.ValidID(id) || r.URL.Query().Get("t") != s.currentToken() || strings.Contains(file, "/") {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	f, err := os.Open(filepath.Join(s.dir, id, file))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, _ := f.Stat()
	var out http.ResponseWriter = w
	if bps := s.BytesPerSecond.Load(); bps > 0 {
		out = &throttled{ResponseWriter: w, bps: bps, start: time.Now()}
	}
	http.ServeContent(out, r, file, fi.ModTime(), f)
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
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		w, _ := wav.NewWriter(f, 44100, 2)
		p := make([]float32, 2*lengths[k])
		for i := range lengths[k] {
			p[2*i], p[2*i+1] = Signal(at + i)
		}
		at += lengths[k]
		w.Write(p)
		w.Close()
		f.Close()
		if _, err := in.Ingest(ctx, id, path); err != nil {
			return err
		}
	}
	return nil
}
