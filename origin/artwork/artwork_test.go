package artwork

import (
	"bytes"
	"encoding/json"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/origin/media"
)

// TestImage: real, deterministic JPEGs with validators a cache can use.
// Mutations caught: a size outside Sizes accepted (the 100 px row); the
// ETag missing (the If-None-Match request is then a 200).
func TestImage(t *testing.T) {
	s := New(media.NewSynthetic(10, 1))
	cases := []struct {
		path   string
		status int
		size   int
	}{
		{"/img/t1/64.jpg", 200, 64},
		{"/img/t1/300.jpg", 200, 300},
		{"/img/t2/640.jpg", 200, 640},
		{"/img/t1/100.jpg", 404, 0},
		{"/img/../300.jpg", 404, 0},
		{"/img/t1/300.png", 404, 0},
		{"/img/t1", 404, 0},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = c.path
		w := httptest.NewRecorder()
		s.ServeImage(w, r)
		if w.Code != c.status {
			t.Errorf("%s: %d, want %d", c.path, w.Code, c.status)
			continue
		}
		if c.status != 200 {
			if w.Header().Get("Cache-Control") == "" {
				t.Errorf("%s: a 404 without Cache-Control", c.path)
			}
			continue
		}
		img, err := jpeg.Decode(bytes.NewReader(w.Body.Bytes()))
		if err != nil || img.Bounds().Dx() != c.size || img.Bounds().Dy() != c.size {
			t.Errorf("%s: %v %v", c.path, err, img)
		}
		if w.Header().Get("ETag") == "" || w.Header().Get("Last-Modified") == "" || w.Header().Get("Cache-Control") != "public, max-age=86400" {
			t.Errorf("%s: headers %v", c.path, w.Header())
		}
		// Conditional requests are answered.
		r2 := httptest.NewRequest("GET", c.path, nil)
		r2.Header.Set("If-None-Match", w.Header().Get("ETag"))
		w2 := httptest.NewRecorder()
		s.ServeImage(w2, r2)
		if w2.Code != http.StatusNotModified {
			t.Errorf("%s: If-None-Match gave %d", c.path, w2.Code)
		}
	}
	a, _ := Render("t1", 64)
	b, _ := Render("t1", 64)
	o, _ := Render("t2", 64)
	if !bytes.Equal(a, b) || bytes.Equal(a, o) {
		t.Error("images are not deterministic per album")
	}
}

func TestTrack(t *testing.T) {
	s := New(media.NewSynthetic(10, 1))
	w := httptest.NewRecorder()
	s.ServeTrack(w, httptest.NewRequest("GET", "/v1/tracks/t3", nil))
	var m Metadata
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &m) != nil || m.ID != "t3" || m.DurationMS <= 0 || len(m.Tiers) == 0 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w.Header().Get("ETag") == "" || w.Header().Get("Cache-Control") != "public, max-age=300" {
		t.Errorf("headers %v", w.Header())
	}
	for _, p := range []string{"/v1/tracks/t99", "/v1/tracks/bad id", "/v1/tracks/"} {
		r := httptest.NewRequest("GET", "/v1/tracks/x", nil)
		r.URL.Path = p
		w := httptest.NewRecorder()
		s.ServeTrack(w, r)
		if w.Code != 404 {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
}

// FuzzImagePath: the path parser accepts only what it can serve.
func FuzzImagePath(f *testing.F) {
	for _, p := range []string{"/img/t1/300.jpg", "/img/../x", "/img/a/b/c.jpg", "/img//64.jpg"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		album, size, ok := ParseImagePath(p)
		if ok && (!catalog.ValidID(album) || (size != 64 && size != 300 && size != 640)) {
			t.Fatalf("%q: %q %d", p, album, size)
		}
	})
}
