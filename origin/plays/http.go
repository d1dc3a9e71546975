package plays

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/catalog"
	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/ratelimit"
)

// ingestResponse is the body of a 202 (and of a 400 when every event was
// refused).
type ingestResponse struct {
	Accepted int         `json:"accepted"`
	Rejected []Rejection `json:"rejected"`
}

type errorResponse struct {
	Error     string `json:"error"`
	MaxEvents int    `json:"max_events,omitempty"`
}

// servePlays is POST /v1/plays. It answers 202 only once the broker has
// acknowledged every valid event of the batch; on any produce failure it
// answers 503 and the client retries the batch with the same play ids,
// which the ledger deduplicates.
func (s *Service) servePlays(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "method_not_allowed"})
		return
	}
	start := time.Now()
	now := s.now()
	user, err := s.trust.Sessions.FromRequest(r, now)
	if err != nil {
		s.m.rejected.WithLabelValues("unauthorized").Inc()
		identity.Challenge(w, err)
		writeJSON(w, http.StatusUnauthorized, errorResponse{Error: "unauthorized"})
		return
	}
	if ok, wait := s.limit.Allow(user.ID, 1, now); !ok {
		s.m.rejected.WithLabelValues("rate_limited").Inc()
		w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfter(wait)))
		writeJSON(w, http.StatusTooManyRequests, errorResponse{Error: "rate_limited"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.m.rejected.WithLabelValues("unsupported_media_type").Inc()
		writeJSON(w, http.StatusUnsupportedMediaType, errorResponse{Error: "content_type_not_json"})
		return
	}
	select {
	case s.bodies <- struct{}{}:
		defer func() { <-s.bodies }()
	default:
		s.m.rejected.WithLabelValues("busy").Inc()
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "busy"})
		return
	}
	// Not every ResponseWriter supports deadlines (httptest's recorder);
	// the server's own ReadTimeout then still bounds the body.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	acc, rej, err := DecodeBatch(body, s.cfg.MaxBatchEvents, now, s.cfg.Retention, s.trust.Tickets, user.ID)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		s.m.rejected.WithLabelValues("body_too_large").Inc()
		writeJSON(w, http.StatusRequestEntityTooLarge, errorResponse{Error: "body_too_large"})
		return
	case errors.Is(err, ErrBatchTooLarge):
		s.m.rejected.WithLabelValues("batch_too_large").Inc()
		writeJSON(w, http.StatusRequestEntityTooLarge, errorResponse{Error: "batch_too_large", MaxEvents: s.cfg.MaxBatchEvents})
		return
	case errors.Is(err, ErrNotArray):
		s.m.rejected.WithLabelValues(ReasonBadJSON).Inc()
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: ReasonBadJSON})
		return
	case err != nil:
		// A read that timed out or broke: the client may retry.
		s.m.rejected.WithLabelValues("bad_body").Inc()
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "bad_body"})
		return
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	for _, x := range rej {
		s.m.rejected.WithLabelValues(x.Reason).Inc()
	}
	if rej == nil {
		rej = []Rejection{}
	}
	if len(acc) == 0 && len(rej) > 0 {
		writeJSON(w, http.StatusBadRequest, ingestResponse{Rejected: rej})
		return
	}

	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		prodErr error
	)
	wg.Add(len(acc))
	for i := range acc {
		rec := &kgo.Record{Topic: PlaysTopic, Key: []byte(acc[i].Event.PlayID), Value: acc[i].Raw}
		s.producer.Produce(r.Context(), rec, func(_ *kgo.Record, err error) {
			if err != nil {
				errMu.Lock()
				if prodErr == nil {
					prodErr = err
				}
				errMu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if prodErr != nil {
		s.log.Warn("plays: produce failed", "events", len(acc), "err", prodErr)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "unavailable"})
		return
	}
	s.m.produce.Observe(time.Since(start).Seconds())
	s.m.accepted.Add(float64(len(acc)))
	writeJSON(w, http.StatusAccepted, ingestResponse{Accepted: len(acc), Rejected: rej})
}

// royaltiesResponse is the body of GET /v1/royalties/tracks/<id>.
type royaltiesResponse struct {
	TrackID      string         `json:"track_id"`
	Plays        int64          `json:"plays"`
	ByDay        []dayCount     `json:"by_day,omitempty"`
	ByCountry    []countryCount `json:"by_country,omitempty"`
	ByDayCountry []TrackCount   `json:"by_day_country,omitempty"`
}

type dayCount struct {
	Day   string `json:"day"`
	Plays int64  `json:"plays"`
}

type countryCount struct {
	Country string `json:"country"`
	Plays   int64  `json:"plays"`
}

// serveRoyalties is GET /v1/royalties/tracks/<id>[?by=day|country|day,country].
func (s *Service) serveRoyalties(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, errorResponse{Error: "method_not_allowed"})
		return
	}
	id := strings.TrimPrefix(r.URL.Path, "/v1/royalties/tracks/")
	if !catalog.ValidID(id) {
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: "bad_track_id"})
		return
	}
	var byDay, byCountry bool
	if by := r.URL.Query().Get("by"); by != "" {
		for _, k := range strings.Split(by, ",") {
			switch k {
			case "day":
				byDay = true
			case "country":
				byCountry = true
			default:
				writeJSON(w, http.StatusBadRequest, errorResponse{Error: "bad_by"})
				return
			}
		}
	}
	total, rows, err := s.ledger.TrackPlays(r.Context(), id)
	if err != nil {
		s.log.Error("plays: royalties query", "track", id, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "unavailable"})
		return
	}
	resp := royaltiesResponse{TrackID: id, Plays: total}
	switch {
	case byDay && byCountry:
		resp.ByDayCountry = rows
		if resp.ByDayCountry == nil {
			resp.ByDayCountry = []TrackCount{}
		}
	case byDay:
		resp.ByDay = []dayCount{}
		for _, k := range byKey(rows, func(c TrackCount) string { return c.Day }) {
			resp.ByDay = append(resp.ByDay, dayCount{Day: k.Key, Plays: k.Plays})
		}
	case byCountry:
		resp.ByCountry = []countryCount{}
		for _, k := range byKey(rows, func(c TrackCount) string { return c.Country }) {
			resp.ByCountry = append(resp.ByCountry, countryCount{Country: k.Key, Plays: k.Plays})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", itoa(len(b)+1))
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
