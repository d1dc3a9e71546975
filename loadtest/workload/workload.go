// Package workload generates the listening sessions a load run or a cache
// simulation replays: Zipf track popularity, plays with skips and seeks,
// bandwidth classes, all deterministic from a seed. It sits below loadtest
// and loadtest/cachesim, which both replay it.
package workload

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/zipf"
)

// Config describes the listeners a run simulates. Every field is in
// simulated time unless it says otherwise; the run's Compression maps it to
// wall time.
type Config struct {
	// Tracks is the catalog size N; track popularity rank r is track "t<r>".
	// Default 100000, cmd/pop's synthetic catalog.
	Tracks int
	// Seed drives every random choice and must equal the synthetic
	// catalog's seed, so the sizes the plan uses are the ones served.
	// Default 1.
	Seed uint64
	// Skew is the Zipf exponent s of track popularity. Default 1.0: measured
	// music catalogs fall between 0.8 and 1.2 (the head is a little flatter
	// than web objects), and 1.0 sits in the middle of that range.
	Skew float64
	// SessionRate is the mean arrival rate of listener sessions, in sessions
	// per wall-clock second (Poisson arrivals). Default 4.
	SessionRate float64
	// MeanTracks is the mean number of tracks a session plays (geometric).
	// Default 8.
	MeanTracks float64
	// SkipProb is the chance a track is skipped before its end. Default 0.25.
	SkipProb float64
	// SeekProb is the chance the listener seeks forward in a track that is
	// not skipped. Default 0.1.
	SeekProb float64
	// AlbumSize is the number of consecutive track ids an album holds; an
	// album session plays on from its first track. Default 12.
	AlbumSize int
	// Playlists is the number of shared playlists (chosen Zipf-popular, each
	// a fixed sequence of tracks), giving replays of the same sequences.
	// Default 1000.
	Playlists int
	// Users is the size of the listener population. Default 1000000.
	Users int
	// FirstFetch is how much audio the first request of a track asks for:
	// the player fetches it at once. Default 10s.
	FirstFetch time.Duration
	// FetchAhead is how much audio every later request asks for. Default 30s.
	FetchAhead time.Duration
	// LowWater is how much buffered audio, ahead of the play position,
	// triggers the next request. Default 20s.
	LowWater time.Duration
	// PlayThreshold is the audio a play must reach to be reported. Default 30s.
	PlayThreshold time.Duration
	// Countries and CountryWeights give each listener's country.
	Countries      []string
	CountryWeights []float64
	// Classes are the bandwidth classes; a listener's class caps its tier.
	Classes []BandwidthClass
}

// BandwidthClass is a kind of connection: a share of the listeners and the
// highest tier, in kbit/s, the player picks on it.
type BandwidthClass struct {
	Name    string
	Weight  float64
	MaxKbps int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Tracks:         100000,
		Seed:           1,
		Skew:           1.0,
		SessionRate:    4,
		MeanTracks:     8,
		SkipProb:       0.25,
		SeekProb:       0.1,
		AlbumSize:      12,
		Playlists:      1000,
		Users:          1000000,
		FirstFetch:     10 * time.Second,
		FetchAhead:     30 * time.Second,
		LowWater:       20 * time.Second,
		PlayThreshold:  catalog.PlayThreshold,
		Countries:      []string{"US", "BR", "GB", "DE", "MX", "SE", "FR", "JP", "IN", "ES"},
		CountryWeights: []float64{30, 12, 10, 9, 8, 7, 7, 6, 6, 5},
		Classes: []BandwidthClass{
			{Name: "2g", Weight: 5, MaxKbps: 24},
			{Name: "3g", Weight: 15, MaxKbps: 64},
			{Name: "lte", Weight: 30, MaxKbps: 96},
			{Name: "wifi", Weight: 35, MaxKbps: 160},
			{Name: "premium", Weight: 15, MaxKbps: 320},
		},
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Tracks < 1:
		return fmt.Errorf("workload: tracks %d < 1", c.Tracks)
	case !(c.Skew >= 0 && c.Skew <= 5):
		return fmt.Errorf("workload: skew %v not in [0, 5]", c.Skew)
	case !(c.SessionRate > 0):
		return fmt.Errorf("workload: session rate %v not > 0", c.SessionRate)
	case !(c.MeanTracks >= 1):
		return fmt.Errorf("workload: mean tracks %v < 1", c.MeanTracks)
	case c.SkipProb < 0 || c.SkipProb > 1 || c.SeekProb < 0 || c.SeekProb > 1:
		return fmt.Errorf("workload: probabilities must be in [0, 1]")
	case c.AlbumSize < 1 || c.Playlists < 1 || c.Users < 1:
		return fmt.Errorf("workload: album size, playlists and users must be >= 1")
	case c.FirstFetch <= 0 || c.FetchAhead <= 0 || c.LowWater < 0:
		return fmt.Errorf("workload: fetch sizes must be > 0")
	case len(c.Countries) == 0 || len(c.Countries) != len(c.CountryWeights):
		return fmt.Errorf("workload: countries and weights differ in length")
	case len(c.Classes) == 0:
		return fmt.Errorf("workload: no bandwidth classes")
	}
	for _, cl := range c.Classes {
		if !catalog.ValidTier(cl.MaxKbps) {
			return fmt.Errorf("workload: class %q: %d is not a tier", cl.Name, cl.MaxKbps)
		}
	}
	return nil
}

// Session is one listener's visit: the tracks it plays, and for each the
// byte ranges it fetches and when. It is a plan, computed without I/O.
type Session struct {
	ID      int64
	User    int
	Country string
	Class   int           // index into Config.Classes
	Kbps    int           // tier the player picks for every track (never mid-track)
	Pick    uint64        // a random number for the load balancer's choice of edge
	Start   time.Duration // wall-clock, since the start of the run
	Plays   []Play
}

// Play is one track of a session.
type Play struct {
	Track int
	// Start is when the track starts, since the session's start.
	Start time.Duration
	// Played is how much audio is played before the track stops.
	Played time.Duration
	// Next are the tracks the session will play after this one (up to 3),
	// the hint a player sends in X-Next-Tracks.
	Next []int
	// Fetches are the byte ranges of the tier's file, in order.
	Fetches []Fetch
}

// Fetch is one range request.
type Fetch struct {
	// At is when it is due, since the session's start.
	At  time.Duration
	Off int64
	Len int64
}

// Generator produces the sessions of a workload in arrival order. It is
// deterministic: the same config gives the same sessions. Not safe for
// concurrent use.
type Generator struct {
	cfg      Config
	cat      *media.Synthetic
	zipf     *zipf.Zipf
	plZipf   *zipf.Zipf
	arrivals *rand.Rand
	country  *Weighted
	class    *Weighted
	next     int64
	clock    time.Duration
}

// NewGenerator returns a generator for cfg; sizes come from the synthetic
// catalog of (cfg.Tracks, cfg.Seed).
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Generator{
		cfg:      cfg,
		cat:      media.NewSynthetic(cfg.Tracks, cfg.Seed),
		zipf:     zipf.New(cfg.Tracks, cfg.Skew),
		plZipf:   zipf.New(cfg.Playlists, 1.0),
		arrivals: rand.New(rand.NewPCG(cfg.Seed, 0x61727269)),
		country:  NewWeighted(cfg.CountryWeights),
		class:    NewWeighted(classWeights(cfg.Classes)),
	}, nil
}

func classWeights(classes []BandwidthClass) []float64 {
	w := make([]float64, len(classes))
	for i, cl := range classes {
		w[i] = cl.Weight
	}
	return w
}

// Catalog is the synthetic catalog the plan's sizes come from.
func (g *Generator) Catalog() *media.Synthetic { return g.cat }

// Next returns the next session. Arrivals are in wall-clock time (the
// session rate is what an operator sets); times within a session are
// simulated, and the runner divides them by its compression factor.
func (g *Generator) Next() Session {
	g.clock += time.Duration(g.arrivals.ExpFloat64() / g.cfg.SessionRate * float64(time.Second))
	id := g.next
	g.next++
	return g.session(id, g.clock)
}

// session builds session id from its own random stream, so sessions do not
// depend on one another.
func (g *Generator) session(id int64, start time.Duration) Session {
	c := &g.cfg
	r := rand.New(rand.NewPCG(c.Seed^0x5e55_10, uint64(id)))
	s := Session{
		ID:      id,
		User:    r.IntN(c.Users),
		Country: c.Countries[g.country.Draw(r)],
		Class:   g.class.Draw(r),
		Pick:    r.Uint64(),
		Start:   start,
	}
	s.Kbps = c.Classes[s.Class].MaxKbps
	n := 1 + int(r.ExpFloat64()*(c.MeanTracks-1)+0.5)
	tracks := g.sequence(r, n)
	at := time.Duration(0)
	for k, t := range tracks {
		p := g.play(r, t, s.Kbps, at)
		if k+1 < len(tracks) {
			p.Next = tracks[k+1 : min(k+4, len(tracks))]
		}
		s.Plays = append(s.Plays, p)
		at += p.Played
	}
	return s
}

// sequence picks n tracks with the locality of real listening: an album
// played on from a popular track, a shared playlist, or radio (independent
// popular tracks), one third each.
func (g *Generator) sequence(r *rand.Rand, n int) []int {
	c := &g.cfg
	out := make([]int, 0, n)
	switch r.IntN(3) {
	case 0: // album
		first := g.zipf.Draw(r)
		album := first / c.AlbumSize * c.AlbumSize
		for k := 0; k < n; k++ {
			t := album + (first-album+k)%c.AlbumSize
			if t >= c.Tracks {
				t = album
			}
			out = append(out, t)
		}
	case 1: // playlist: a fixed sequence shared by every listener of it
		pl := g.plZipf.Draw(r)
		pr := rand.New(rand.NewPCG(c.Seed^0x706c_61, uint64(pl)))
		for k := 0; k < n; k++ {
			out = append(out, g.zipf.Draw(pr))
		}
	default: // radio
		for k := 0; k < n; k++ {
			out = append(out, g.zipf.Draw(r))
		}
	}
	return out
}

// play plans the fetches of one track: the first FirstFetch at once, then
// FetchAhead whenever the buffer ahead of the play position falls to
// LowWater; a seek jumps the position forward and fetches there at once.
func (g *Generator) play(r *rand.Rand, track, kbps int, start time.Duration) Play {
	c := &g.cfg
	dur := time.Duration(g.cat.DurationMS(track)) * time.Millisecond
	size := g.cat.Size(track, kbps)
	p := Play{Track: track, Start: start, Played: dur}
	seekAt, seekTo := time.Duration(-1), time.Duration(0)
	switch {
	case r.Float64() < c.SkipProb:
		// Skips cluster early; a fifth of them happen after 30 s.
		if r.IntN(5) == 0 {
			p.Played = c.PlayThreshold + time.Duration(r.Float64()*float64(dur/2))
		} else {
			p.Played = time.Duration(2+r.IntN(26)) * time.Second
		}
		p.Played = min(p.Played, dur)
	case r.Float64() < c.SeekProb:
		seekAt = time.Duration(r.Float64() * float64(dur/3))
		seekTo = seekAt + time.Duration(r.Float64()*float64(dur-seekAt)*0.8)
		// The session time spent is what is heard, not the skipped part.
		p.Played = seekAt + (dur - seekTo)
	}
	bytesAt := func(pos time.Duration) int64 {
		return min(int64(pos/time.Millisecond)*int64(kbps)/8, size)
	}
	add := func(at, from, to time.Duration) {
		off, end := bytesAt(from), bytesAt(to)
		if end > off {
			p.Fetches = append(p.Fetches, Fetch{At: start + at, Off: off, Len: end - off})
		}
	}
	// timeAt is when, since the track's start, the audio position reaches
	// x; base is the earliest time of the current stretch of playing.
	timeAt := func(x time.Duration) time.Duration { return x }
	base := time.Duration(0)
	buffered := c.FirstFetch
	add(0, 0, buffered)
	seekPending := seekAt >= 0
	for buffered < dur {
		due := max(timeAt(buffered-c.LowWater), base)
		if seekPending && due >= seekAt {
			seekPending = false
			if seekTo >= buffered { // outside the buffer: fetch there at once
				add(seekAt, seekTo, seekTo+c.FirstFetch)
				buffered = seekTo + c.FirstFetch
			}
			timeAt = func(x time.Duration) time.Duration { return seekAt + x - seekTo }
			base = seekAt
			continue
		}
		if due >= p.Played {
			break
		}
		add(due, buffered, buffered+c.FetchAhead)
		buffered += c.FetchAhead
	}
	return p
}

// Weighted draws an index with probability proportional to its weight.
type Weighted struct{ cdf []float64 }

// NewWeighted returns a draw over len(w) choices.
func NewWeighted(w []float64) *Weighted {
	cdf := make([]float64, len(w))
	sum := 0.0
	for i, x := range w {
		sum += x
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return &Weighted{cdf: cdf}
}

// Draw returns an index.
func (w *Weighted) Draw(r *rand.Rand) int {
	return min(sort.SearchFloat64s(w.cdf, r.Float64()), len(w.cdf)-1)
}
