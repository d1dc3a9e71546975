// Package catalog is the vocabulary every tier, service and client of the
// delivery network shares: what a track id, a user id, a quality tier and a
// kind of file are; how one file of one track is named (the object name
// "<id>/<kbps>.<ext>") and where it is served (the origin's "/media/..."
// and the edges' "/a/..."); the key that routes a track to its owning
// edge; the schema of track.json; the 30-second rule; and the header in
// which a player names the tracks that follow.
//
// Everything here is defined once, so the edge that parses a request, the
// origin that serves it, the player that builds it and the load tool that
// imitates it cannot drift apart. The package is a leaf: it imports only
// the standard library, xxhash and ident.
//
// Parsers here read untrusted input (request paths, headers): they check
// the syntax completely and never allocate on the []byte forms the edge's
// hot path uses.
package catalog

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/musiccdn/cdn/ident"
)

// Tiers are the bitrates, in kbit/s, every track is encoded at, lowest
// first.
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

// MaxIDLen is the longest id accepted: track ids, user ids and play ids
// alike.
const MaxIDLen = 64

// ValidID reports whether id is a track id: 1 to MaxIDLen characters of
// [A-Za-z0-9_-]. Ids are opaque; this check keeps them safe in paths,
// cache keys, headers, log fields and database keys.
func ValidID(id string) bool { return ident.Valid(id, MaxIDLen) }

// ValidIDBytes is ValidID for a byte slice, so hot paths need not convert.
func ValidIDBytes(id []byte) bool { return ident.Valid(id, MaxIDLen) }

// ValidUserID reports whether id is a user id. User ids follow the track
// id rules (the identity provider's subject, the play ticket's user and the
// play event's user are the same string).
func ValidUserID(id string) bool { return ident.Valid(id, MaxIDLen) }

// ValidPlayID reports whether id is a play id (the origin mints them as
// ULIDs; any id of the track id rules is accepted).
func ValidPlayID(id string) bool { return ident.Valid(id, MaxIDLen) }

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

// ContentType is the media type the kind is labelled with.
func (k Kind) ContentType() string {
	if k == SeekTable {
		return "application/octet-stream"
	}
	return "audio/ogg"
}

// Name is the object name of a file: "<id>/<kbps>.<ext>", the cache key's
// text at every tier and the tail of its paths.
func Name(id string, kbps int, kind Kind) string {
	return id + "/" + strconv.Itoa(kbps) + "." + kind.Ext()
}

// ParseName parses an object name "<id>/<kbps>.<ogg|seek>": id must be a
// valid id and kbps one of Tiers, written canonically (no sign, no leading
// zero). It does not allocate; track aliases name.
func ParseName(name []byte) (track []byte, kbps int, kind Kind, ok bool) {
	slash := bytes.IndexByte(name, '/')
	if slash < 0 || !ValidIDBytes(name[:slash]) {
		return nil, 0, 0, false
	}
	track, file := name[:slash], name[slash+1:]
	i := 0
	for i < len(file) && i < 4 && file[i] >= '0' && file[i] <= '9' {
		kbps = kbps*10 + int(file[i]-'0')
		i++
	}
	if i == 0 || file[0] == '0' || !ValidTier(kbps) || i >= len(file) || file[i] != '.' {
		return nil, 0, 0, false
	}
	switch string(file[i+1:]) {
	case "ogg":
		kind = Audio
	case "seek":
		kind = SeekTable
	default:
		return nil, 0, 0, false
	}
	return track, kbps, kind, true
}

// ParseNameString is ParseName for a string.
func ParseNameString(name string) (track string, kbps int, kind Kind, ok bool) {
	t, kbps, kind, ok := ParseName([]byte(name))
	if !ok {
		return "", 0, 0, false
	}
	return name[:len(t)], kbps, kind, true
}

// TrackOf is the track id of an object name ParseName accepted: the part
// before the first slash.
func TrackOf(name string) string {
	track, _, _ := strings.Cut(name, "/")
	return track
}

// The path prefixes under which objects are served.
const (
	// MediaPrefix is the origin's and the shields' fill path, on their
	// internal listeners: "/media/<name>".
	MediaPrefix = "/media/"
	// EdgePrefix is the players' path at the edges: "/a/<name>?t=<token>".
	EdgePrefix = "/a/"
)

// MediaPath is the fill path of a file: "/media/<id>/<kbps>.<ext>".
func MediaPath(id string, kbps int, kind Kind) string { return MediaPrefix + Name(id, kbps, kind) }

// EdgePath is the player-facing edge path of a file, without its token:
// "/a/<id>/<kbps>.<ext>".
func EdgePath(id string, kbps int, kind Kind) string { return EdgePrefix + Name(id, kbps, kind) }

// ParseMediaPath parses "/media/<id>/<kbps>.<ogg|seek>" (see ParseName).
func ParseMediaPath(p string) (id string, kbps int, kind Kind, ok bool) {
	name, found := strings.CutPrefix(p, MediaPrefix)
	if !found {
		return "", 0, 0, false
	}
	return ParseNameString(name)
}

// ParseEdgePath parses "/a/<id>/<kbps>.<ogg|seek>" (the path alone, without
// the query; see ParseName).
func ParseEdgePath(p string) (id string, kbps int, kind Kind, ok bool) {
	name, found := strings.CutPrefix(p, EdgePrefix)
	if !found {
		return "", 0, 0, false
	}
	return ParseNameString(name)
}

// Key is the routing key of a track: which edge owns it (rendezvous
// hashing over the edges), which shields fill it, in what order. Every
// file of a track has the track's key, so one edge holds all its tiers.
func Key(track string) uint64 { return xxhash.Sum64String(track) }

// KeyBytes is Key for a byte slice.
func KeyBytes(track []byte) uint64 { return xxhash.Sum64(track) }

// KeyOfName is the routing key of an object name: its track's Key.
func KeyOfName(name string) uint64 { return Key(TrackOf(name)) }

// TrackInfoFile is the name of the per-track metadata file in a directory
// catalog: "<root>/<id>/track.json".
const TrackInfoFile = "track.json"

// TrackInfo is the content of track.json: the one schema ingest writes
// and catalogs read.
type TrackInfo struct {
	DurationMS int64 `json:"duration_ms"`
	// Samples is the track's exact length in sample frames at
	// SampleRate, the source's rate (a tier resampled to another rate may
	// hold a frame more: encoders round up). 0 when unknown.
	Samples    int64 `json:"samples"`
	SampleRate int   `json:"sample_rate"`
	Tiers      []int `json:"tiers"`
	// TierRates is each tier's sample rate, keyed by kbps ("24": 22050).
	TierRates map[string]int `json:"tier_rates,omitempty"`
	// Embedding is the track's content embedding, computed from its audio
	// at ingest (recommendations place tracks without plays by it).
	Embedding []float32 `json:"embedding,omitempty"`
}

// PlayThreshold is the 30-second rule: a play counts (is reported by the
// player, and earns a royalty at the origin) when at least this much of the
// track's audio was actually rendered.
const PlayThreshold = 30 * time.Second

// QualifyingMS is PlayThreshold in milliseconds, the unit of a play
// event's ms_played.
const QualifyingMS = int64(PlayThreshold / time.Millisecond)

// HeaderNextTracks is the player's hint, on its request for the first
// chunk of a track, of the tracks that follow: track ids separated by
// commas. It is untrusted: readers take only its first MaxHintBytes bytes
// and examine only as many ids as they will act on (see NextTracks).
const HeaderNextTracks = "X-Next-Tracks"

// MaxHintBytes caps the X-Next-Tracks header read: ten ids of the longest
// kind fit, the rest is ignored.
const MaxHintBytes = 1 << 10

// FormatNextTracks is the X-Next-Tracks value naming ids in order.
func FormatNextTracks(ids []string) string { return strings.Join(ids, ",") }

// NextTracks calls yield with the ids of an X-Next-Tracks value, in order,
// reading at most its first MaxHintBytes bytes and examining at most max
// entries: an entry that is not a valid id, repeats one already yielded,
// or equals current is skipped (and counts as examined), so whatever the
// header holds the caller does at most max units of work. yield returns
// false to stop early.
func NextTracks(hint, current string, max int, yield func(id string) bool) {
	if len(hint) > MaxHintBytes {
		hint = hint[:MaxHintBytes]
	}
	var seen []string
	for examined := 0; examined < max && hint != ""; examined++ {
		var id string
		id, hint, _ = strings.Cut(hint, ",")
		id = strings.TrimSpace(id)
		if id == current || !ValidID(id) || slices.Contains(seen, id) {
			continue
		}
		seen = append(seen, id)
		if !yield(id) {
			return
		}
	}
}
