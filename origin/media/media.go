// Package media is the catalog store behind the origin: Source is the one
// interface through which the origin reads audio files and seek tables,
// whether they live in a directory (Dir) or are generated on the fly
// (Synthetic). The words it uses (track ids, tiers, kinds, track.json) are
// package catalog's.
package media

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/musiccdn/cdn/catalog"
)

// ErrNotFound is returned for an unknown track, tier or kind.
var ErrNotFound = errors.New("media: not found")

// Object describes one immutable version of one file.
type Object struct {
	Track   string
	Kbps    int
	Kind    catalog.Kind
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
	Open(ctx context.Context, id string, kbps int, kind catalog.Kind) (Object, File, error)
	// List returns up to limit track ids in catalog order, starting after
	// the id after ("" for the start).
	List(ctx context.Context, after string, limit int) ([]string, error)
}
