// Package artwork is the origin's synthetic image and metadata service,
// the upstream of the edges' and shields' http routes (package httpcache):
//
//	GET|HEAD /img/<album>/<size>.jpg   cover art, a real JPEG (image/jpeg),
//	                                   deterministic per album and size
//	GET|HEAD /v1/tracks/<id>           a track's metadata as JSON, from the
//	                                   catalog (duration, tiers)
//
// Both set Cache-Control, a strong ETag and Last-Modified, and answer
// conditional and range requests (net/http's ServeContent), so that a
// cache in front can store, revalidate and slice them.
//
// Who may call: anyone; they are public. What one request may cost: an
// image is at most 640×640 pixels, encoded once and kept (the last
// MaxImages encodings); a metadata response is one catalog lookup.
package artwork

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/origin/media"
)

// Sizes are the edge lengths of the square images served, in pixels.
var Sizes = []int{64, 300, 640}

// Freshness the service gives caches.
const (
	ImageMaxAge    = 24 * time.Hour  // images never change for an album
	MetadataMaxAge = 5 * time.Minute // metadata may be corrected
	NotFoundMaxAge = time.Minute
	// MaxImages is how many encoded images are kept in memory.
	MaxImages = 512
)

// Modified is the Last-Modified of every image (they never change).
var Modified = media.SyntheticEpoch

// Service serves images and metadata.
type Service struct {
	src media.Source

	mu     sync.Mutex
	images map[string][]byte // "<album>/<size>" -> JPEG
}

// New returns the service over a catalog.
func New(src media.Source) *Service {
	return &Service{src: src, images: map[string][]byte{}}
}

// ServeImage answers /img/<album>/<size>.jpg.
func (s *Service) ServeImage(w http.ResponseWriter, r *http.Request) {
	album, size, ok := ParseImagePath(r.URL.Path)
	if !ok {
		notFound(w)
		return
	}
	b, err := s.Image(album, size)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(ImageMaxAge/time.Second)))
	h.Set("ETag", etag(b))
	http.ServeContent(w, r, "", Modified, bytes.NewReader(b))
}

// ParseImagePath checks "/img/<album>/<size>.jpg": album a catalog-style
// id, size one of Sizes.
func ParseImagePath(p string) (album string, size int, ok bool) {
	rest, found := strings.CutPrefix(p, "/img/")
	if !found {
		return "", 0, false
	}
	album, file, found := strings.Cut(rest, "/")
	if !found || !catalog.ValidID(album) {
		return "", 0, false
	}
	num, found := strings.CutSuffix(file, ".jpg")
	if !found {
		return "", 0, false
	}
	for _, s := range Sizes {
		if num == strconv.Itoa(s) {
			return album, s, true
		}
	}
	return "", 0, false
}

// Image returns the JPEG for album at size (one of Sizes).
func (s *Service) Image(album string, size int) ([]byte, error) {
	key := album + "/" + strconv.Itoa(size)
	s.mu.Lock()
	b := s.images[key]
	s.mu.Unlock()
	if b != nil {
		return b, nil
	}
	b, err := Render(album, size)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.images) >= MaxImages {
		clear(s.images)
	}
	s.images[key] = b
	s.mu.Unlock()
	return b, nil
}

// Render draws album's cover at size×size: two colours derived from the
// album's name, a diagonal gradient between them and a ring, encoded as a
// baseline JPEG. The same album and size give the same bytes.
func Render(album string, size int) ([]byte, error) {
	h := xxhash.Sum64String(album)
	c0 := color.RGBA{uint8(h), uint8(h >> 8), uint8(h >> 16), 255}
	c1 := color.RGBA{uint8(h >> 24), uint8(h >> 32), uint8(h >> 40), 255}
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	mid, ring := float64(size)/2, float64(size)*(0.2+float64(h>>56)/255*0.2)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			t := float64(x+y) / float64(2*size)
			c := color.RGBA{lerp(c0.R, c1.R, t), lerp(c0.G, c1.G, t), lerp(c0.B, c1.B, t), 255}
			dx, dy := float64(x)-mid, float64(y)-mid
			if d := dx*dx + dy*dy; d > (ring-float64(size)/40)*(ring-float64(size)/40) && d < ring*ring {
				c = color.RGBA{255 - c.R, 255 - c.G, 255 - c.B, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("artwork: encode %s/%d: %w", album, size, err)
	}
	return buf.Bytes(), nil
}

func lerp(a, b uint8, t float64) uint8 { return uint8(float64(a)*(1-t) + float64(b)*t) }

// Metadata is the JSON of /v1/tracks/<id>.
type Metadata struct {
	ID         string `json:"id"`
	DurationMS int64  `json:"duration_ms"`
	Tiers      []int  `json:"tiers"`
	Cover      string `json:"cover"` // path of the 300 px cover
}

// ServeTrack answers /v1/tracks/<id>.
func (s *Service) ServeTrack(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/tracks/")
	if !catalog.ValidID(id) {
		notFound(w)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	t, err := s.src.Track(ctx, id)
	switch {
	case errors.Is(err, media.ErrNotFound):
		notFound(w)
		return
	case err != nil:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	b, err := json.Marshal(Metadata{ID: t.ID, DurationMS: t.DurationMS, Tiers: t.Tiers, Cover: "/img/" + t.ID + "/300.jpg"})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(MetadataMaxAge/time.Second)))
	h.Set("ETag", etag(b))
	http.ServeContent(w, r, "", Modified, bytes.NewReader(b))
}

func etag(b []byte) string { return fmt.Sprintf(`"%016x"`, xxhash.Sum64(b)) }

// notFound is a 404 that caches may keep a minute.
func notFound(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(NotFoundMaxAge/time.Second)))
	http.Error(w, "not found", http.StatusNotFound)
}
