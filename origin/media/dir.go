package media

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/musiccdn/cdn/catalog"
)

// Dir is a catalog kept in a directory tree:
//
//	<root>/<track_id>/<kbps>.ogg    audio, one file per tier
//	<root>/<track_id>/<kbps>.seek   seek table of that tier (optional)
//	<root>/<track_id>/track.json    {"duration_ms":..., "samples":..., "sample_rate":..., "tiers":[24,...]} (optional)
//
// Without track.json a track's tiers are the audio files present and its
// duration is 0.
//
// Files are expected to be replaced atomically (write a temporary file, then
// rename it over the old one), never rewritten in place: an open File keeps
// reading the version it opened, and a replaced file is a new version with a
// new ETag. The ETag is the xxhash64 of the file's bytes, computed once per
// (path, size, mtime) and remembered, so a file is read in full only the
// first time a version is opened.
type Dir struct {
	root string

	hashes atomic.Int64 // file versions hashed, see Hashes

	mu    sync.Mutex
	etags map[string]*dirVersion // path -> last version hashed or being hashed
}

// dirVersion is one version of a file and its ETag, valid once done is
// closed (then etag, or err if hashing failed). Only the latest version of
// each path is kept, so the map is bounded by the number of files.
type dirVersion struct {
	size  int64
	mtime int64 // unix nanoseconds
	done  chan struct{}
	etag  string
	err   error
}

// maxTrackInfo bounds the size of track.json read into memory.
const maxTrackInfo = 64 << 10

// OpenDir returns the catalog rooted at root, which must be a directory.
func OpenDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("media: dir %q: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("media: dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("media: dir %q: not a directory", root)
	}
	return &Dir{root: abs, etags: make(map[string]*dirVersion)}, nil
}

var _ Source = (*Dir)(nil)

// Root is the absolute path of the catalog directory.
func (d *Dir) Root() string { return d.root }

// Hashes is the number of times a file was read in full to compute its
// ETag: once per version opened, unless the hashing request was cancelled.
func (d *Dir) Hashes() int64 { return d.hashes.Load() }

// Track implements Source. The tiers are those of track.json when present
// (keeping only valid tiers whose audio file exists), otherwise those whose
// audio file exists.
func (d *Dir) Track(ctx context.Context, id string) (Track, error) {
	if !catalog.ValidID(id) {
		return Track{}, ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return Track{}, err
	}
	dir := filepath.Join(d.root, id)
	info, err := d.readInfo(dir)
	if err != nil {
		return Track{}, err
	}
	t := Track{ID: id, DurationMS: info.DurationMS}
	if info.Samples > 0 && info.SampleRate > 0 {
		t.Samples, t.SampleRate = info.Samples, info.SampleRate
	}
	for _, kbps := range catalog.Tiers {
		if info.Tiers != nil && !slices.Contains(info.Tiers, kbps) {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, fileName(kbps, catalog.Audio)))
		if err == nil && fi.Mode().IsRegular() {
			t.Tiers = append(t.Tiers, kbps)
		}
	}
	if len(t.Tiers) == 0 {
		return Track{}, ErrNotFound
	}
	return t, nil
}

// Embedding returns the content embedding ingest stored for id, or
// ErrNotFound when there is none.
func (d *Dir) Embedding(ctx context.Context, id string) ([]float32, error) {
	if !catalog.ValidID(id) {
		return nil, ErrNotFound
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	info, err := d.readInfo(filepath.Join(d.root, id))
	if err != nil {
		return nil, err
	}
	if len(info.Embedding) == 0 {
		return nil, ErrNotFound
	}
	return info.Embedding, nil
}

// Open implements Source. The returned File is the *os.File itself: its
// ReadAt (pread) is safe for concurrent use and keeps reading the opened
// version after a rename replaces it.
func (d *Dir) Open(ctx context.Context, id string, kbps int, kind catalog.Kind) (Object, File, error) {
	if !catalog.ValidID(id) || !catalog.ValidTier(kbps) || (kind != catalog.Audio && kind != catalog.SeekTable) {
		return Object{}, nil, ErrNotFound
	}
	path := filepath.Join(d.root, id, fileName(kbps, kind))
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) {
			return Object{}, nil, ErrNotFound
		}
		return Object{}, nil, fmt.Errorf("media: open: %w", err)
	}
	// Stat the open descriptor, not the path: the metadata must describe
	// the version f reads even if the path was replaced meanwhile.
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return Object{}, nil, fmt.Errorf("media: stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return Object{}, nil, ErrNotFound
	}
	etag, err := d.etag(ctx, path, f, fi)
	if err != nil {
		f.Close()
		return Object{}, nil, err
	}
	obj := Object{
		Track:   id,
		Kbps:    kbps,
		Kind:    kind,
		Size:    fi.Size(),
		ETag:    etag,
		ModTime: fi.ModTime(),
	}
	return obj, f, nil
}

// List implements Source: ids in byte-wise sorted order, starting after
// after (which need not exist). Only directories named by a valid id and
// holding at least one audio file are tracks.
func (d *Dir) List(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	entries, err := os.ReadDir(d.root) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("media: list: %w", err)
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if name <= after || !catalog.ValidID(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if !d.hasAudio(name) {
			continue
		}
		ids = append(ids, name)
		if len(ids) == limit {
			break
		}
	}
	return ids, nil
}

func (d *Dir) hasAudio(id string) bool {
	for _, kbps := range catalog.Tiers {
		fi, err := os.Stat(filepath.Join(d.root, id, fileName(kbps, catalog.Audio)))
		if err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// readInfo reads dir/track.json. A missing file is an empty TrackInfo with
// nil Tiers; a missing directory is ErrNotFound.
func (d *Dir) readInfo(dir string) (catalog.TrackInfo, error) {
	var info catalog.TrackInfo
	f, err := os.Open(filepath.Join(dir, catalog.TrackInfoFile))
	if errors.Is(err, fs.ErrNotExist) {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return info, ErrNotFound
		}
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("media: track info: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTrackInfo+1))
	if err != nil {
		return info, fmt.Errorf("media: track info: %w", err)
	}
	if len(b) > maxTrackInfo {
		return info, fmt.Errorf("media: track info %s: larger than %d bytes", f.Name(), maxTrackInfo)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("media: track info %s: %w", f.Name(), err)
	}
	if info.DurationMS < 0 {
		return info, fmt.Errorf("media: track info %s: negative duration_ms", f.Name())
	}
	if info.Samples < 0 || info.SampleRate < 0 {
		return info, fmt.Errorf("media: track info %s: negative samples or sample_rate", f.Name())
	}
	// Tiers == nil (absent from the file) means: take the files present.
	return info, nil
}

// etag returns the ETag of the version of path that f holds, hashing it
// unless that (path, size, mtime) was hashed before. Concurrent first opens
// of one version wait for a single hash. If the hashing request gives up
// (its ctx ends), a waiter hashes in its place.
func (d *Dir) etag(ctx context.Context, path string, f *os.File, fi fs.FileInfo) (string, error) {
	size, mtime := fi.Size(), fi.ModTime().UnixNano()
	for {
		d.mu.Lock()
		v := d.etags[path]
		if v != nil && v.size == size && v.mtime == mtime {
			d.mu.Unlock()
			select {
			case <-v.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if v.err == nil {
				return v.etag, nil
			}
			continue // the hasher failed and removed v: try again
		}
		v = &dirVersion{size: size, mtime: mtime, done: make(chan struct{})}
		d.etags[path] = v
		d.mu.Unlock()

		// Hash outside the lock: a large file must not stall other opens.
		d.hashes.Add(1)
		sum, err := hashFile(ctx, f, size)
		if err != nil {
			d.mu.Lock()
			if d.etags[path] == v {
				delete(d.etags, path)
			}
			d.mu.Unlock()
			v.err = err
			close(v.done)
			return "", fmt.Errorf("media: hash %s: %w", path, err)
		}
		v.etag = `"x` + strconv.FormatUint(sum, 16) + `"`
		close(v.done)
		return v.etag, nil
	}
}

// hashFile returns the xxhash64 of the first size bytes of f, read with
// ReadAt so the shared file offset is never moved.
func hashFile(ctx context.Context, f io.ReaderAt, size int64) (uint64, error) {
	h := xxhash.New()
	buf := make([]byte, 256<<10)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n := int(min(int64(len(buf)), size-off))
		m, err := f.ReadAt(buf[:n], off)
		h.Write(buf[:m])
		off += int64(m)
		if m < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	return h.Sum64(), nil
}

func fileName(kbps int, kind catalog.Kind) string {
	return strconv.Itoa(kbps) + "." + kind.Ext()
}
