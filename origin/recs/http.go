package recs

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/country"
)

// Handler serves
//
//	GET /v1/recs/next/<track_id>?n=3&country=CC  → {"tracks":[...]}
//	GET /v1/recs/user/<user_id>?n=10&country=CC  → {"tracks":[...]}
//
// n defaults to 3 and 10 and is at most Config.MaxN; without country, no
// rights filter applies (players always send it). It answers 400 for a
// bad id, n or country, 404 for an id the model does not know and 503
// before the first model. The origin mounts only /v1/recs/user/ from it:
// it serves /v1/recs/next itself (package origin), asking Next. Bodies are cached for CacheTTL per
// (model, request) and sent zstd- or gzip-compressed when Accept-Encoding
// allows.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/recs/next/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, endpointNext)
	})
	mux.HandleFunc("GET /v1/recs/user/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, endpointUser)
	})
	return mux
}

type endpoint int

const (
	endpointNext endpoint = iota
	endpointUser
)

func (e endpoint) String() string {
	if e == endpointUser {
		return "user"
	}
	return "next"
}

// Default n per endpoint when the query has none.
const (
	defaultNextN = 3
	defaultUserN = 10
)

// request is a parsed, validated recommendation request.
type request struct {
	endpoint endpoint
	id       string
	country  string
	n        int
}

// parseRequest validates the untrusted parts of a request: the id from
// the path and the query. It returns a short client-facing reason on
// error.
func parseRequest(e endpoint, id, rawQuery string, maxN int) (request, error) {
	req := request{endpoint: e, id: id, n: defaultNextN}
	if e == endpointUser {
		req.n = defaultUserN
		if !catalog.ValidUserID(id) {
			return req, errors.New("bad user id")
		}
	} else if !catalog.ValidID(id) {
		return req, errors.New("bad track id")
	}
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "n":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxN {
				return req, errors.New("bad n")
			}
			req.n = n
		case "country":
			if !country.Valid(v) {
				return req, errors.New("bad country")
			}
			req.country = v
		}
	}
	return req, nil
}

func (r request) cacheKey(gen uint64) string {
	var b strings.Builder
	b.Grow(len(r.id) + 32)
	b.WriteString(strconv.FormatUint(gen, 10))
	b.WriteByte(' ')
	b.WriteString(r.endpoint.String())
	b.WriteByte(' ')
	b.WriteString(r.country)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(r.n))
	b.WriteByte(' ')
	b.WriteString(r.id)
	return b.String()
}

// response is one encoded answer in every content coding.
type response struct {
	identity, gzip, zstd []byte
}

func (r *response) cost() int64 {
	return int64(len(r.identity)+len(r.gzip)+len(r.zstd)) + 128
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request, e endpoint) {
	start := time.Now()
	code := s.serveCode(w, r, e)
	s.metrics.requests.WithLabelValues(e.String(), strconv.Itoa(code)).Inc()
	s.metrics.latency.WithLabelValues(e.String()).Observe(time.Since(start).Seconds())
}

func (s *Service) serveCode(w http.ResponseWriter, r *http.Request, e endpoint) int {
	req, err := parseRequest(e, r.PathValue("id"), r.URL.RawQuery, s.cfg.MaxN)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return http.StatusBadRequest
	}
	m := s.model.Load()
	if m == nil {
		http.Error(w, "no model yet", http.StatusServiceUnavailable)
		return http.StatusServiceUnavailable
	}
	key := req.cacheKey(m.gen)
	resp, hit := s.cache.Get(key)
	if hit {
		s.metrics.cacheHits.Inc()
	} else {
		s.metrics.cacheMisses.Inc()
		var ids []string
		switch e {
		case endpointNext:
			i, ok := m.trackIdx[req.id]
			if !ok {
				http.Error(w, "unknown track", http.StatusNotFound)
				return http.StatusNotFound
			}
			ids = m.next(i, req.n, s.allowed(req.country))
		case endpointUser:
			u, ok := m.userIdx[req.id]
			if !ok {
				http.Error(w, "unknown user", http.StatusNotFound)
				return http.StatusNotFound
			}
			var allow func(string) bool
			if req.country != "" {
				allow = s.allowed(req.country)
			}
			ids = m.forUser(u, req.n, allow)
		}
		resp, err = s.encode(ids)
		if err != nil {
			s.log.Error("recs encode response", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return http.StatusInternalServerError
		}
		s.cache.SetWithTTL(key, resp, resp.cost(), s.cfg.CacheTTL)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Vary", "Accept-Encoding")
	h.Set("Cache-Control", "max-age="+strconv.Itoa(int(s.cfg.CacheTTL/time.Second)))
	body := resp.identity
	switch negotiate(r.Header.Get("Accept-Encoding")) {
	case "zstd":
		h.Set("Content-Encoding", "zstd")
		body = resp.zstd
	case "gzip":
		h.Set("Content-Encoding", "gzip")
		body = resp.gzip
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return http.StatusOK
}

type tracksJSON struct {
	Tracks []string `json:"tracks"`
}

// encoder compresses responses. It lives in the Service rather than in
// package state so that nothing is shared between services.
type encoder struct {
	gzip sync.Pool // of *gzip.Writer
	zstd *zstd.Encoder
}

func newEncoder() (*encoder, error) {
	// One-shot EncodeAll calls are safe for concurrent use; concurrency 1
	// keeps the encoder from starting goroutines.
	z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, err
	}
	e := &encoder{zstd: z}
	e.gzip.New = func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
		return w
	}
	return e, nil
}

func (s *Service) encode(ids []string) (*response, error) {
	if ids == nil {
		ids = []string{}
	}
	js, err := json.Marshal(tracksJSON{Tracks: ids})
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw := s.enc.gzip.Get().(*gzip.Writer)
	zw.Reset(&gz)
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	s.enc.gzip.Put(zw)
	return &response{
		identity: js,
		gzip:     gz.Bytes(),
		zstd:     s.enc.zstd.EncodeAll(js, make([]byte, 0, len(js)+16)),
	}, nil
}

// negotiate picks the content coding for an Accept-Encoding header
// (RFC 9110 §12.5.3): the accepted coding with the highest q value among
// zstd, gzip and identity, preferring them in that order on ties; "" for
// identity.
func negotiate(header string) string {
	if header == "" {
		return ""
	}
	q := map[string]float64{}
	star := -1.0
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		w := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				w = f
			}
		}
		if name == "*" {
			star = w
			continue
		}
		if name == "x-gzip" {
			name = "gzip"
		}
		q[name] = w
	}
	weight := func(c string) float64 {
		if w, ok := q[c]; ok {
			return w
		}
		if star >= 0 {
			return star
		}
		if c == "identity" {
			return 0.001 // acceptable unless excluded (§12.5.3)
		}
		return 0
	}
	best, bestW := "", weight("identity")
	for _, c := range []string{"gzip", "zstd"} {
		if w := weight(c); w > 0 && w >= bestW {
			best, bestW = c, w
		}
	}
	return best
}
