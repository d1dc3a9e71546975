package origin

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/musiccdn/cdn/manifest"
	"github.com/musiccdn/cdn/origin/rights"
	"github.com/musiccdn/cdn/tierauth"
)

// SnapshotPath is the internal endpoint edges pull the catalog and
// rights snapshot from (package manifest), with the tier credential.
const SnapshotPath = "/v1/snapshot"

// snapshotTTL is how long a built snapshot is served before the next
// request builds a new one: however many edges pull, the origin builds at
// most one per TTL. A build walks the whole catalog and decides every
// (track, country) pair: about 2 s of one core for 100 000 tracks (25 M
// rights decisions; BenchmarkBuild in package manifest), so it is rare: a
// rights or catalog change reaches the POP within this plus the edges'
// manifest.refresh.
const snapshotTTL = 5 * time.Minute

// snapshotCache holds the last encoded, gzipped snapshot.
type snapshotCache struct {
	mu    sync.Mutex // held while building: concurrent pulls wait for one build
	built time.Time
	body  []byte
	etag  string
}

// serveSnapshot answers GET /v1/snapshot on the internal listener: the
// tier credential (edges only), then the snapshot, at most snapshotTTL
// old, gzip-encoded. The most one request costs: one catalog walk per
// snapshotTTL for all callers together, and sending a few MB.
func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	if err := s.tier.Load().Verify([]byte(r.Header.Get(tierauth.Header)), []byte(r.Method), []byte(r.RequestURI), s.now()); err != nil {
		s.tierRejected.Inc()
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	c := &s.snap
	c.mu.Lock()
	now := s.now()
	if c.body == nil || now.Sub(c.built) >= snapshotTTL {
		snap, err := manifest.Build(r.Context(), s.src, s.rights, rights.Countries(), now)
		if err != nil {
			c.mu.Unlock()
			s.fail(w, r, "snapshot", err)
			return
		}
		var plain, buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if err := snap.Encode(&plain); err != nil {
			c.mu.Unlock()
			s.fail(w, r, "snapshot", err)
			return
		}
		zw.Write(plain.Bytes())
		zw.Close()
		// The ETag is the content's, without the header line (which
		// holds the build time): an edge holding the same catalog and
		// rights gets a 304 and decodes nothing.
		_, content, _ := bytes.Cut(plain.Bytes(), []byte{'\n'})
		c.body, c.built, c.etag = buf.Bytes(), now, `"`+strconv.FormatUint(xxhash.Sum64(content), 36)+`"`
	}
	body, etag := c.body, c.etag
	c.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Encoding", "gzip")
	h.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}
