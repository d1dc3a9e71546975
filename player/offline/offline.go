// Package offline stores downloaded tracks for playback without a network,
// encrypted at rest: each file (the audio of one tier and its seek table)
// is encrypted with AES-128-CTR under a random content key, so any offset
// decrypts without the bytes before it, with an HMAC-SHA256 per 16 KiB
// block since CTR alone detects no tampering. The content key is sealed
// with AES-GCM under the wrap key of the track's licence (origin/licence),
// which expires after 30 days: an expired licence refuses playback until
// Renew stores a fresh one fetched online. Each licence has its own random
// wrap key, so Renew re-seals the content keys (a header rewrite, not the
// audio) from the old licence's key to the new one. Nothing is written in
// plaintext, and files are written under temporary names and renamed into
// place.
//
// Licences are checked against the public key the Store was made with,
// which the caller must take from its configuration (a flag, the addr
// file of a trusted deployment, the binary), never from a file the
// user can write and that was trusted on first use: whoever can replace
// that key can sign licences that never expire.
//
// Offline plays: TakePlay hands out the licence's pre-issued play ids and
// tickets one per play (a counter in <track>.used), for the plays
// reporter to send when next online.
//
// Layout of the store directory:
//
//	<track>.ogg.enc   audio container
//	<track>.seek.enc  seek table container
//	<track>.lic       the licence (signed, see origin/licence)
//	<track>.json      {"kbps":...} (no content)
//	<track>.used      how many of the licence's offline plays were taken
package offline

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/musiccdn/cdn/atomicfile"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/origin/api"
	"github.com/musiccdn/cdn/seektable"
)

// Store is a directory of encrypted downloads.
type Store struct {
	dir string
	pub ed25519.PublicKey
	now func() time.Time
}

// NewStore opens (creating) dir. Licences are checked with pub against the
// clock now.
func NewStore(dir string, pub ed25519.PublicKey, now func() time.Time) (*Store, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("offline: no licence public key")
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	return &Store{dir: dir, pub: pub, now: now}, nil
}

// Info is what the store keeps of a track beside its files: the tier
// stored, and the track's exact length from its manifest (Samples frames
// at SampleRate; 0 when unknown), which the player stops at.
type Info struct {
	Kbps       int   `json:"kbps"`
	Samples    int64 `json:"samples,omitempty"`
	SampleRate int   `json:"sample_rate,omitempty"`
}

type meta = Info

// Put stores a track's tier (info.Kbps): the audio (exactly size bytes
// from audio) and its seek table, under the licence tok, which must be
// valid now and for this track.
func (s *Store) Put(track string, info Info, tok string, audio io.Reader, size int64, seek []byte) error {
	kbps := info.Kbps
	if !catalog.ValidID(track) {
		return fmt.Errorf("offline: bad track id %q", track)
	}
	l, err := api.VerifyLicence(s.pub, tok, s.now())
	if err != nil {
		return fmt.Errorf("offline: %s: %w", track, err)
	}
	if l.TrackID != track {
		return fmt.Errorf("offline: licence is for %q, not %q", l.TrackID, track)
	}
	if _, err := seektable.Decode(seek); err != nil {
		return fmt.Errorf("offline: %s: %w", track, err)
	}
	if err := s.writeEnc(track+".seek.enc", bytes.NewReader(seek), int64(len(seek)), l.WrapKey, context(track, kbps, "seek")); err != nil {
		return err
	}
	if err := s.writeEnc(track+".ogg.enc", audio, size, l.WrapKey, context(track, kbps, "ogg")); err != nil {
		return err
	}
	mb, _ := json.Marshal(info)
	if err := s.writeFile(track+".json", mb); err != nil {
		return err
	}
	if err := s.writeFile(track+".lic", []byte(tok)); err != nil {
		return err
	}
	return s.removeUsed(track)
}

// Renew replaces a track's licence with tok (fetched online), re-sealing
// the downloaded files' content keys under its wrap key. The old licence
// may have expired, but it must carry a valid signature. Interrupted, it
// is completed by calling it again with the same tok.
func (s *Store) Renew(track, tok string) error {
	l, err := api.VerifyLicence(s.pub, tok, s.now())
	if err != nil {
		return fmt.Errorf("offline: renew %s: %w", track, err)
	}
	if l.TrackID != track {
		return fmt.Errorf("offline: licence is for %q, not %q", l.TrackID, track)
	}
	old, err := s.storedLicence(track)
	if err != nil {
		return fmt.Errorf("offline: renew %s: %w", track, err)
	}
	if l.UserID != old.UserID || l.DeviceID != old.DeviceID {
		return fmt.Errorf("offline: renew %s: licence is for %s on %s, the download for %s on %s", track, l.UserID, l.DeviceID, old.UserID, old.DeviceID)
	}
	m, err := s.meta(track)
	if err != nil {
		return err
	}
	for _, kind := range []string{"seek", "ogg"} {
		if err := rewrap(filepath.Join(s.dir, track+"."+kind+".enc"), old.WrapKey, l.WrapKey, context(track, m.Kbps, kind)); err != nil {
			return err
		}
	}
	if err := s.writeFile(track+".lic", []byte(tok)); err != nil {
		return err
	}
	return s.removeUsed(track)
}

// Play is one pre-issued offline play, as the report of the play carries
// it.
type Play struct {
	PlayID, Ticket, UserID, Country string
}

// ErrNoPlays is returned by TakePlay when the licence's offline plays are
// used up: further plays are not reported until the licence is renewed.
var ErrNoPlays = errors.New("offline: the licence's offline plays are used up")

// TakePlay consumes one of the track's licence's pre-issued plays. The
// licence may have expired during the play.
func (s *Store) TakePlay(track string) (Play, error) {
	l, err := s.storedLicence(track)
	if err != nil {
		return Play{}, err
	}
	n := 0
	if b, err := os.ReadFile(filepath.Join(s.dir, track+".used")); err == nil {
		if n, err = strconv.Atoi(string(b)); err != nil || n < 0 {
			return Play{}, fmt.Errorf("%w: %s.used", ErrTampered, track)
		}
	}
	if n >= len(l.Plays) {
		return Play{}, ErrNoPlays
	}
	if err := s.writeFile(track+".used", []byte(strconv.Itoa(n+1))); err != nil {
		return Play{}, err
	}
	p := l.Plays[n]
	return Play{PlayID: p.PlayID, Ticket: p.Ticket, UserID: l.UserID, Country: l.Country}, nil
}

// storedLicence reads and checks a track's stored licence, expired or not.
func (s *Store) storedLicence(track string) (api.Licence, error) {
	if !catalog.ValidID(track) {
		return api.Licence{}, fmt.Errorf("offline: bad track id %q", track)
	}
	tok, err := os.ReadFile(filepath.Join(s.dir, track+".lic"))
	if errors.Is(err, os.ErrNotExist) {
		return api.Licence{}, fmt.Errorf("%w: %s", ErrNotDownloaded, track)
	}
	if err != nil {
		return api.Licence{}, fmt.Errorf("offline: %w", err)
	}
	l, err := api.VerifyLicence(s.pub, string(tok), s.now())
	if err != nil && !errors.Is(err, api.ErrLicenceExpired) {
		return api.Licence{}, fmt.Errorf("offline: %s: %w", track, err)
	}
	if l.TrackID != track {
		return api.Licence{}, fmt.Errorf("offline: %s: licence is for %q", track, l.TrackID)
	}
	return l, nil
}

func (s *Store) meta(track string) (meta, error) {
	mb, err := os.ReadFile(filepath.Join(s.dir, track+".json"))
	if err != nil {
		return meta{}, fmt.Errorf("offline: %w", err)
	}
	var m meta
	if err := json.Unmarshal(mb, &m); err != nil || !catalog.ValidTier(m.Kbps) || m.Samples < 0 || m.SampleRate < 0 {
		return meta{}, fmt.Errorf("%w: %s.json", ErrTampered, track)
	}
	return m, nil
}

func (s *Store) removeUsed(track string) error {
	if err := os.Remove(filepath.Join(s.dir, track+".used")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}

// Track is an opened download.
type Track struct {
	ID   string
	Kbps int
	// Samples and SampleRate are the track's exact length (see Info).
	Samples    int64
	SampleRate int
	Table      *seektable.Table
	Licence    api.Licence
	f          *encFile
}

// ErrNotDownloaded is returned by Open for a track not in the store.
var ErrNotDownloaded = errors.New("offline: track not downloaded")

// Open checks the licence and returns the track for reading. An expired
// licence is an error wrapping api.ErrLicenceExpired.
func (s *Store) Open(track string) (*Track, error) {
	if !catalog.ValidID(track) {
		return nil, fmt.Errorf("offline: bad track id %q", track)
	}
	tok, err := os.ReadFile(filepath.Join(s.dir, track+".lic"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotDownloaded, track)
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %w", err)
	}
	l, err := api.VerifyLicence(s.pub, string(tok), s.now())
	if errors.Is(err, api.ErrLicenceExpired) {
		return nil, fmt.Errorf("offline: %s: %w; renew it online (player download) to play again", track, err)
	}
	if err != nil {
		return nil, fmt.Errorf("offline: %s: %w", track, err)
	}
	if l.TrackID != track {
		return nil, fmt.Errorf("offline: %s: licence is for %q", track, l.TrackID)
	}
	m, err := s.meta(track)
	if err != nil {
		return nil, err
	}
	sf, err := openEnc(filepath.Join(s.dir, track+".seek.enc"), l.WrapKey, context(track, m.Kbps, "seek"))
	if err != nil {
		return nil, err
	}
	sb := make([]byte, sf.Size())
	_, err = sf.ReadAt(sb, 0)
	sf.Close()
	if err != nil && !(err == io.EOF && len(sb) == 0) {
		return nil, err
	}
	tb, err := seektable.Decode(sb)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	af, err := openEnc(filepath.Join(s.dir, track+".ogg.enc"), l.WrapKey, context(track, m.Kbps, "ogg"))
	if err != nil {
		return nil, err
	}
	if af.Size() != tb.FileSize {
		af.Close()
		return nil, fmt.Errorf("%w: audio size %d, seek table says %d", ErrTampered, af.Size(), tb.FileSize)
	}
	return &Track{ID: track, Kbps: m.Kbps, Samples: m.Samples, SampleRate: m.SampleRate, Table: tb, Licence: l, f: af}, nil
}

// Size is the audio file's plaintext size.
func (t *Track) Size() int64 { return t.f.Size() }

// ReadAt decrypts the audio at any offset; it fails with ErrTampered if a
// block it touches was altered.
func (t *Track) ReadAt(p []byte, off int64) (int, error) { return t.f.ReadAt(p, off) }

// Close releases the file.
func (t *Track) Close() error { return t.f.Close() }

// Remove deletes a track's files.
func (s *Store) Remove(track string) error {
	var errs []error
	for _, ext := range []string{".ogg.enc", ".seek.enc", ".json", ".lic", ".used"} {
		if err := os.Remove(filepath.Join(s.dir, track+ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func context(track string, kbps int, kind string) string {
	return fmt.Sprintf("musiccdn-offline-v1\x00%s\x00%d\x00%s", track, kbps, kind)
}

func (s *Store) writeEnc(name string, r io.Reader, size int64, wrapKey []byte, ctx string) error {
	err := atomicfile.Write(filepath.Join(s.dir, name), func(f *os.File) error {
		return encrypt(f, r, size, wrapKey, ctx)
	})
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}

func (s *Store) writeFile(name string, b []byte) error {
	if err := atomicfile.WriteBytes(filepath.Join(s.dir, name), b); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	return nil
}
