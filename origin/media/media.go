// Package media is the catalog store behind the origin: it names the five
// quality tiers, validates track ids, and defines Source, the one interface
// through which the origin reads audio files and seek tables, whether they
// live in a directory (Dir) or are generated on the fly (Synthetic).
package media

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/musiccdn/cdn/ident"
)

// Tiers are the bitrates, in kbit/s, every track is encoded at, lowest first.
var Tiers = [...]int{24, 64, 96, 160, 320}

// ValidTier reports whether kbps is one of Tiers.
func ValidTier(kbps int) bool {
	for _, t := range Tiers {
		if t == kbps {
			return true
		}
	}
	return false
}

// MaxIDLen is the longest track id accepted.
const MaxIDLen = 64

// ValidID reports whether id is a track id: 1 to 64 characters of
// [A-Za-z0-9_-]. Ids are opaque; this check keeps them safe in paths,
// cache keys and headers.
func ValidID(id string) bool { return ident.Valid(id, MaxIDLen) }

// ValidIDBytes is ValidID for a byte slice, so hot paths need not convert.
func ValidIDBytes(id []byte) bool { return ident.Valid(id, MaxIDLen) }

// Kind is what a file of a (track, tier) holds.
type Kind int

const (
	// Audio is the Ogg Vorbis file, served as <kbps>.ogg.
	Audio Kind = iota
	// SeekTable maps time to byte offset in the Audio file, served as
	// <kbps>.seek.
	SeekTable
)

// Ext is the file name extension of the kind, without the dot.
func (k Kind) Ext() string {
	if k == SeekTable {
		return "seek"
	}
	return "ogg"
}

// ContentType is the media type the origin labels the kind with.
func (k Kind) ContentType() string {
	if k == SeekTable {
		return "application/octet-stream"
	}
	return "audio/ogg"
}

// ErrNotFound is returned for an unknown track, tier or kind.
var ErrNotFound = errors.New("media: not found")

// Object describes one immutable version of one file.
type Object struct {
	Track   string
	Kbps    int
	Kind    Kind
	Size    int64
	ETag    string    // strong, quoted: "..." ; changes whenever the bytes do
	ModTime time.Time // Last-Modified
}

// Track is what the catalog knows of a track as a whole.
type Track struct {
	ID         string
	DurationMS int64
	// Samples is the exact length in sample frames at SampleRate (the
	// source's rate), from track.json; 0 (and SampleRate 0) when unknown.
	Samples    int64
	SampleRate int
	// Tiers lists the bitrates that exist for the track, lowest first.
	Tiers []int
}

// File is an open version of an object. ReadAt must be safe for concurrent
// use; Close releases it.
type File interface {
	io.ReaderAt
	io.Closer
}

// Source is a catalog. Implementations must be safe for concurrent use.
type Source interface {
	// Track returns the track's metadata, or ErrNotFound.
	Track(ctx context.Context, id string) (Track, error)
	// Open returns the current version of a file and its metadata, or
	// ErrNotFound. The returned File reads that version even if the
	// catalog is updated meanwhile.
	Open(ctx context.Context, id string, kbps int, kind Kind) (Object, File, error)
	// List returns up to limit track ids in catalog order, starting after
	// the id after ("" for the start).
	List(ctx context.Context, after string, limit int) ([]string, error)
}
