package loadtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/httprange"
	"github.com/musiccdn/cdn/origin/media"
)

// NullPOP is a stand-in for a whole POP that does as little as it can:
// one handler that answers manifests, range requests (from the synthetic
// catalog, always "hit") and play events. It exists to measure the load
// tool itself (how many requests it can offer when the target costs
// nothing), and as the far side of the tool's own tests.
type NullPOP struct {
	cat *media.Synthetic
	// NoPlays makes POST /v1/plays answer 404, as an origin without a play
	// pipeline does.
	NoPlays bool
}

// NewNullPOP serves the synthetic catalog of (n, seed).
func NewNullPOP(n int, seed uint64) *NullPOP {
	return &NullPOP{cat: media.NewSynthetic(n, seed)}
}

var _ http.Handler = (*NullPOP)(nil)

// ServeHTTP implements http.Handler.
func (p *NullPOP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/manifest/"):
		p.manifest(w, r)
	case strings.HasPrefix(r.URL.Path, catalog.EdgePrefix):
		p.media(w, r)
	case r.URL.Path == "/v1/plays" && r.Method == http.MethodPost:
		_, _ = io.Copy(io.Discard, r.Body)
		if p.NoPlays {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

func (p *NullPOP) manifest(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/manifest/")
	i, ok := p.cat.Index(id)
	if !ok {
		http.NotFound(w, r)
		return
	}
	m := Manifest{TrackID: id, DurationMS: p.cat.DurationMS(i), Country: r.URL.Query().Get("country")}
	for _, k := range catalog.Tiers {
		m.Tiers = append(m.Tiers, ManifestTier{
			Kbps: k, Bytes: p.cat.Size(i, k), ETag: p.cat.ETag(i, k, 0),
			URL: catalog.EdgePath(id, k, catalog.Audio) + "?t=null",
		})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m)
}

func (p *NullPOP) media(w http.ResponseWriter, r *http.Request) {
	id, kbps, kind, ok := catalog.ParseEdgePath(r.URL.Path)
	if !ok || kind != catalog.Audio {
		http.NotFound(w, r)
		return
	}
	obj, f, err := p.cat.Open(r.Context(), id, kbps, catalog.Audio)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	w.Header().Set("Cache-Status", httprange.CacheStatus("null", httprange.CacheHit))
	v := httprange.Validators{ETag: []byte(obj.ETag), LastModified: obj.ModTime}
	if committed, err := httprange.Serve(w, r, f, obj.Size, v, "audio/ogg", httprange.DefaultMaxRanges); err != nil && committed {
		panic(http.ErrAbortHandler)
	} else if err != nil {
		http.Error(w, "read error", http.StatusInternalServerError)
	}
}
