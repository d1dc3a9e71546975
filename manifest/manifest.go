// Package manifest makes playback manifests inside a POP, so that track
// starts survive the origin: a Snapshot of the catalog's metadata (each
// track's duration and, per tier, size, ETag and whether it has a seek
// table) and of the rights (a bitmap of the countries that may play each
// track, as decided when the snapshot was taken) is built by the origin
// (Build), served on its internal listener behind the tier credential,
// pulled by every edge on an interval, and used by the edge to answer
// GET /v1/manifest/<track> itself (Snapshot.Manifest), with URLs signed
// by the token key the edges already hold.
//
// What a snapshot costs and what it allows: it is about 250 bytes per
// track in memory at each edge (25 MB for 100 000 tracks), one build per
// TTL at the origin (about 2 s of a core for 100 000 tracks, see
// BenchmarkBuild), and a rights change reaches the POP within the
// origin's snapshot TTL plus one refresh interval; while the origin is unreachable, the POP keeps the
// last snapshot for up to its max age, so a licence that ends during an
// outage is honoured late by at most that much.
//
// The wire format (Encode, Decode) is text, one track per line, gzip
// compressed on the wire by the HTTP layer:
//
//	musiccdn-snapshot 1 <taken, unix seconds> <countries>
//	<country codes, comma separated>
//	<id> TAB <duration ms>[:<samples>:<sample rate>] TAB <country bitmap, hex> TAB <tier> [TAB <tier>...]
//
// (the track's exact sample count, when the catalog knows it, follows its
// duration: a decoder of this version reads lines with or without it, a
// decoder from before it refuses lines with it)
// where a tier is "<kbps> <bytes> <seek 0|1> <etag>" (an ETag has no
// spaces or tabs, RFC 9110 §8.8.3) and bit i of the bitmap (byte i/8, bit
// i%8) allows countries[i]. Tracks are in increasing id order.
package manifest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/urlsign"
)

// Snapshot is the catalog and rights as of Taken. It is immutable once
// built or decoded, and safe for concurrent use.
//
// It keeps its tracks as their wire-format lines in one buffer, with an
// index of where each starts, and parses a line when a manifest is
// minted (about a microsecond): about 250 bytes per track (25 MB for
// 100 000 tracks), where a struct per track and tier took over 1 KB.
type Snapshot struct {
	Taken     time.Time
	Countries []string

	index map[string]int32 // country -> bit
	text  []byte           // track lines, "\n"-terminated, by increasing id
	lines []uint32         // start of each line in text
}

// Track is one track of a Snapshot.
type Track struct {
	ID         string
	DurationMS int64
	// Samples and SampleRate are the track's exact length (see
	// api.Manifest); 0 when unknown.
	Samples    int64
	SampleRate int
	Allowed    []byte // country bitmap over Snapshot.Countries
	Tiers      []Tier // lowest first
}

// Tier is one encoding of a track.
type Tier struct {
	Kbps  int
	Bytes int64
	ETag  string
	Seek  bool
}

// Rights decides whether a track may be played in a country at a time.
type Rights interface {
	Allowed(trackID, country string, at time.Time) bool
}

// Errors of Manifest.
var (
	ErrNotFound = errors.New("manifest: no such track")
	ErrDenied   = errors.New("manifest: not licensed in this country")
)

// Build takes a snapshot of src and rights for countries at now. It
// reads every track's metadata: one List page per 1000 tracks and one
// Open per file.
func Build(ctx context.Context, src media.Source, rights Rights, countries []string, now time.Time) (*Snapshot, error) {
	var tracks []Track
	after := ""
	for {
		ids, err := src.List(ctx, after, 1000)
		if err != nil {
			return nil, fmt.Errorf("manifest: list after %q: %w", after, err)
		}
		for _, id := range ids {
			t, ok, err := buildTrack(ctx, src, rights, countries, id, now)
			if err != nil {
				return nil, err
			}
			if ok {
				tracks = append(tracks, t)
			}
		}
		if len(ids) < 1000 {
			break
		}
		after = ids[len(ids)-1]
	}
	slices.SortFunc(tracks, func(a, b Track) int { return strings.Compare(a.ID, b.ID) })
	return FromTracks(now, countries, tracks), nil
}

// FromTracks makes a snapshot of tracks, which must be in increasing id
// order with valid fields.
func FromTracks(taken time.Time, countries []string, tracks []Track) *Snapshot {
	s := &Snapshot{Taken: taken, Countries: countries, lines: make([]uint32, 0, len(tracks))}
	for _, t := range tracks {
		s.lines = append(s.lines, uint32(len(s.text)))
		s.text = appendTrack(s.text, t)
	}
	s.buildIndex()
	return s
}

// Len is the number of tracks.
func (s *Snapshot) Len() int { return len(s.lines) }

// At returns the i-th track in id order.
func (s *Snapshot) At(i int) Track {
	t, _ := parseTrack(s.line(i), (len(s.Countries)+7)/8)
	return t
}

// line is the i-th track line without its newline.
func (s *Snapshot) line(i int) []byte {
	end := len(s.text)
	if i+1 < len(s.lines) {
		end = int(s.lines[i+1])
	}
	return s.text[s.lines[i] : end-1]
}

// idOf is the id of the i-th line.
func (s *Snapshot) idOf(i int) []byte {
	l := s.line(i)
	if j := bytes.IndexByte(l, '\t'); j >= 0 {
		return l[:j]
	}
	return l
}

func buildTrack(ctx context.Context, src media.Source, rights Rights, countries []string, id string, now time.Time) (Track, bool, error) {
	tr, err := src.Track(ctx, id)
	if errors.Is(err, media.ErrNotFound) {
		return Track{}, false, nil // removed since List
	}
	if err != nil {
		return Track{}, false, fmt.Errorf("manifest: track %s: %w", id, err)
	}
	t := Track{ID: id, DurationMS: tr.DurationMS, Samples: tr.Samples, SampleRate: tr.SampleRate, Allowed: make([]byte, (len(countries)+7)/8)}
	for i, cc := range countries {
		if rights.Allowed(id, cc, now) {
			t.Allowed[i/8] |= 1 << (i % 8)
		}
	}
	for _, kbps := range tr.Tiers {
		obj, f, err := src.Open(ctx, id, kbps, catalog.Audio)
		if errors.Is(err, media.ErrNotFound) {
			continue
		}
		if err != nil {
			return Track{}, false, fmt.Errorf("manifest: %s/%d: %w", id, kbps, err)
		}
		f.Close()
		tier := Tier{Kbps: kbps, Bytes: obj.Size, ETag: obj.ETag}
		_, sf, err := src.Open(ctx, id, kbps, catalog.SeekTable)
		switch {
		case err == nil:
			sf.Close()
			tier.Seek = true
		case !errors.Is(err, media.ErrNotFound):
			return Track{}, false, fmt.Errorf("manifest: %s/%d seek: %w", id, kbps, err)
		}
		t.Tiers = append(t.Tiers, tier)
	}
	return t, len(t.Tiers) > 0, nil
}

func (s *Snapshot) buildIndex() {
	s.index = make(map[string]int32, len(s.Countries))
	for i, cc := range s.Countries {
		s.index[cc] = int32(i)
	}
}

// Track returns the track with id.
func (s *Snapshot) Track(id string) (*Track, bool) {
	lo, hi := 0, len(s.lines)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if string(s.idOf(m)) < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(s.lines) || string(s.idOf(lo)) != id {
		return nil, false
	}
	t := s.At(lo)
	return &t, true
}

// Allowed reports whether t may be played in country.
func (s *Snapshot) Allowed(t *Track, country string) bool {
	i, ok := s.index[country]
	if !ok || int(i/8) >= len(t.Allowed) {
		return false
	}
	return t.Allowed[i/8]&(1<<(i%8)) != 0
}

// Manifest mints the manifest of track id for country at now, with URLs
// signed by kr's current key until now+ttl (whole seconds), exactly as
// the origin's: the same paths, the same token binding (one token per
// file). It returns ErrNotFound or ErrDenied.
func (s *Snapshot) Manifest(id, country string, now time.Time, kr *urlsign.Keyring, ttl time.Duration) (api.Manifest, error) {
	t, ok := s.Track(id)
	if !ok {
		return api.Manifest{}, ErrNotFound
	}
	if !s.Allowed(t, country) {
		return api.Manifest{}, ErrDenied
	}
	expiry := time.Unix(now.Add(ttl).Unix(), 0)
	m := api.Manifest{TrackID: id, DurationMS: t.DurationMS, Samples: t.Samples, SampleRate: t.SampleRate, Country: country, Expires: expiry.Unix(), Tiers: make([]api.Tier, 0, len(t.Tiers))}
	for _, tier := range t.Tiers {
		mt := api.Tier{Kbps: tier.Kbps, Bytes: tier.Bytes, ETag: tier.ETag, URL: kr.EdgePath(id, tier.Kbps, catalog.Audio, country, expiry)}
		if tier.Seek {
			mt.SeekURL = kr.EdgePath(id, tier.Kbps, catalog.SeekTable, country, expiry)
		}
		m.Tiers = append(m.Tiers, mt)
	}
	return m, nil
}

const magic = "musiccdn-snapshot 1 "

// Encode writes s in the wire format.
func (s *Snapshot) Encode(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "%s%d %d\n%s\n", magic, s.Taken.Unix(), len(s.Countries), strings.Join(s.Countries, ","))
	if _, err := bw.Write(s.text); err != nil {
		return err
	}
	return bw.Flush()
}

// appendTrack appends t's line, newline included.
func appendTrack(line []byte, t Track) []byte {
	line = append(line, t.ID...)
	line = append(line, '\t')
	line = strconv.AppendInt(line, t.DurationMS, 10)
	if t.Samples > 0 && t.SampleRate > 0 {
		line = append(line, ':')
		line = strconv.AppendInt(line, t.Samples, 10)
		line = append(line, ':')
		line = strconv.AppendInt(line, int64(t.SampleRate), 10)
	}
	line = append(line, '\t')
	line = hex.AppendEncode(line, t.Allowed)
	for _, tier := range t.Tiers {
		line = append(line, '\t')
		line = strconv.AppendInt(line, int64(tier.Kbps), 10)
		line = append(line, ' ')
		line = strconv.AppendInt(line, tier.Bytes, 10)
		if tier.Seek {
			line = append(line, " 1 "...)
		} else {
			line = append(line, " 0 "...)
		}
		line = append(line, tier.ETag...)
	}
	return append(line, '\n')
}

// Limits of Decode: the input is from the origin, over the private
// network, but a bad or hostile body must not exhaust the edge.
const (
	MaxTracks    = 10_000_000
	maxText      = 1 << 31 // lines are indexed by uint32
	maxLine      = 4096
	maxCountries = 1024
	maxTiers     = 16
)

// Decode reads a snapshot in the wire format, checking every field.
func Decode(r io.Reader) (*Snapshot, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine+maxCountries*3)
	if !sc.Scan() {
		return nil, fmt.Errorf("manifest: snapshot: no header: %w", errOr(sc.Err()))
	}
	head, ok := strings.CutPrefix(sc.Text(), magic)
	if !ok {
		return nil, errors.New("manifest: snapshot: bad header")
	}
	ts, nc, ok := strings.Cut(head, " ")
	taken, err1 := strconv.ParseInt(ts, 10, 64)
	n, err2 := strconv.Atoi(nc)
	if !ok || err1 != nil || err2 != nil || n < 0 || n > maxCountries {
		return nil, errors.New("manifest: snapshot: bad header")
	}
	if !sc.Scan() {
		return nil, fmt.Errorf("manifest: snapshot: no countries: %w", errOr(sc.Err()))
	}
	s := &Snapshot{Taken: time.Unix(taken, 0)}
	if n > 0 {
		s.Countries = strings.Split(sc.Text(), ",")
	}
	if len(s.Countries) != n {
		return nil, fmt.Errorf("manifest: snapshot: %d countries, header says %d", len(s.Countries), n)
	}
	for i, cc := range s.Countries {
		// An assigned code, so the line encodes back as it came (a stray
		// byte such as a \r would not survive a round trip).
		if !country.Valid(cc) || slices.Contains(s.Countries[:i], cc) {
			return nil, fmt.Errorf("manifest: snapshot: bad country %q", cc)
		}
	}
	bitmap := (n + 7) / 8
	line := 2
	var prev []byte
	for sc.Scan() {
		line++
		if len(s.lines) >= MaxTracks || len(s.text)+len(sc.Bytes())+1 > maxText {
			return nil, fmt.Errorf("manifest: snapshot: more than %d tracks or %d bytes", MaxTracks, maxText)
		}
		l := sc.Bytes()
		if _, err := parseTrack(l, bitmap); err != nil {
			return nil, fmt.Errorf("manifest: snapshot: line %d: %w", line, err)
		}
		id, _, _ := bytes.Cut(l, []byte{'\t'})
		if prev != nil && bytes.Compare(prev, id) >= 0 {
			return nil, fmt.Errorf("manifest: snapshot: line %d: track %q out of order", line, id)
		}
		start := len(s.text)
		s.lines = append(s.lines, uint32(start))
		s.text = append(append(s.text, l...), '\n')
		prev = s.text[start : start+len(id)]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("manifest: snapshot: line %d: %w", line+1, err)
	}
	s.text = slices.Clip(s.text)
	s.buildIndex()
	return s, nil
}

func errOr(err error) error {
	if err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

func parseTrack(lb []byte, bitmap int) (Track, error) {
	l := string(lb)
	f := strings.Split(l, "\t")
	if len(f) < 4 || len(f) > 3+maxTiers {
		return Track{}, fmt.Errorf("%d fields", len(f))
	}
	if !catalog.ValidID(f[0]) {
		return Track{}, fmt.Errorf("bad track id %q", f[0])
	}
	t := Track{ID: f[0]}
	var err error
	dur, exact, hasExact := strings.Cut(f[1], ":")
	if t.DurationMS, err = strconv.ParseInt(dur, 10, 64); err != nil || t.DurationMS < 0 {
		return Track{}, fmt.Errorf("bad duration %q", f[1])
	}
	if hasExact {
		n, rate, _ := strings.Cut(exact, ":")
		samples, err1 := strconv.ParseInt(n, 10, 64)
		sr, err2 := strconv.Atoi(rate)
		if err1 != nil || err2 != nil || samples <= 0 || sr <= 0 || sr > 1_000_000 {
			return Track{}, fmt.Errorf("bad sample count %q", f[1])
		}
		t.Samples, t.SampleRate = samples, sr
	}
	if t.Allowed, err = hex.DecodeString(f[2]); err != nil || len(t.Allowed) != bitmap {
		return Track{}, fmt.Errorf("bad country bitmap %q", f[2])
	}
	t.Tiers = make([]Tier, 0, len(f)-3)
	for _, tf := range f[3:] {
		p := strings.SplitN(tf, " ", 4)
		if len(p) != 4 {
			return Track{}, fmt.Errorf("bad tier %q", tf)
		}
		kbps, err1 := strconv.Atoi(p[0])
		size, err2 := strconv.ParseInt(p[1], 10, 64)
		if err1 != nil || err2 != nil || !catalog.ValidTier(kbps) || size < 0 || (p[2] != "0" && p[2] != "1") || p[3] == "" || strings.ContainsAny(p[3], " \t") {
			return Track{}, fmt.Errorf("bad tier %q", tf)
		}
		if k := len(t.Tiers); k > 0 && t.Tiers[k-1].Kbps >= kbps {
			return Track{}, fmt.Errorf("tiers out of order at %d", kbps)
		}
		t.Tiers = append(t.Tiers, Tier{Kbps: kbps, Bytes: size, Seek: p[2] == "1", ETag: p[3]})
	}
	return t, nil
}
