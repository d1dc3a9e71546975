package tier

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/cache"
	"github.com/musiccdn/cdn/urlsign"
)

// metrics are a node's Prometheus series, named <role>_<thing>_<unit>.
// Cache counters are read from cache.Stats when scraped, so the hot path
// touches only atomics it would touch anyway.
type metrics struct {
	requests *prometheus.CounterVec
	byCode   [600]prometheus.Counter // pre-resolved so counting allocates nothing
	latency  prometheus.Histogram
	bytes    prometheus.Counter
	aborted  prometheus.Counter
	tokens   [tokenReasons]prometheus.Counter
}

func newMetrics(role string, reg prometheus.Registerer, st *cache.Store, f *fetcher) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: role + "_requests_total",
			Help: "Requests for audio and seek-table paths, by HTTP status code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    role + "_request_duration_seconds",
			Help:    "Time from request to response handed to the socket (streamed bodies excluded).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: role + "_bytes_served_total",
			Help: "Body bytes served to clients.",
		}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: role + "_aborted_responses_total",
			Help: "Responses whose connection was closed mid-body because a fill failed after the status line went out.",
		}),
	}
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: role + "_token_rejections_total",
		Help: "Requests refused with 403, by reason.",
	}, []string{"reason"})
	for r := range tokenReasons {
		m.tokens[r] = tokens.WithLabelValues(tokenReasonNames[r])
	}
	stat := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: role + "_" + name, Help: help},
			func() float64 { return float64(v()) })
	}
	reg.MustRegister(m.requests, m.latency, m.bytes, m.aborted,
		stat("cache_hits_total", "Chunk reads served without a fill: from memory or the disk tier.", st.Stats.Hits.Load),
		stat("cache_misses_total", "Chunk reads that needed a fill.", st.Stats.Misses.Load),
		stat("upstream_fetches_total", "Chunk fills started upstream (one per missing chunk, whatever the waiters).", st.Stats.Fills.Load),
		stat("upstream_fill_errors_total", "Chunk fills that failed.", st.Stats.FillErrors.Load),
		stat("upstream_attempts_total", "HTTP requests made upstream, failover attempts and revalidations included.", f.attempts.Load),
		stat("upstream_failures_total", "Upstream HTTP attempts that failed.", f.failures.Load),
		stat("collapsed_total", "Reads that joined a fill already in flight instead of fetching.", st.Stats.Collapsed.Load),
		stat("revalidations_total", "Conditional requests upstream after the metadata TTL.", st.Stats.Revalidations.Load),
		stat("stale_served_total", "Responses served from a stale version because revalidation failed (stale-if-error).", st.Stats.StaleServed.Load),
		stat("invalidations_total", "Cached versions dropped because the upstream ETag changed.", st.Stats.Invalidations.Load),
		stat("negative_hits_total", "Requests answered 404 from a remembered upstream 404 (cache.negative_ttl), without asking upstream.", st.Stats.NegativeHits.Load),
		tokens,
	)
	for _, code := range []int{200, 206, 304, 400, 403, 404, 405, 412, 416, 500, 502, 503, 504} {
		m.byCode[code] = m.requests.WithLabelValues(itoa3(code))
	}
	return m
}

// registerCluster adds the series beside the request path, on every node:
// upstream health, purges, reloads and takedowns; the disk tier's when
// there is one; with a cluster (an edge), peer fills, the hot cache and
// handoffs; minted manifests and prefetch when they are on.
func (m *metrics) registerCluster(role string, reg prometheus.Registerer, s *Server) {
	stat := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: role + "_" + name, Help: help},
			func() float64 { return float64(v()) })
	}
	reg.MustRegister(stat("upstream_skipped_total", "Upstreams passed over because passive health marked them down.", s.fetch.skipped.Load),
		stat("upstream_passed_on_total", "502 and 504 answers an upstream passed on from further up (HeaderUpstreamError): not held against its health.",
			func() int64 {
				n := s.fetch.passedOn.Load()
				if s.hotFetch != nil {
					n += s.hotFetch.passedOn.Load()
				}
				return n
			}),
		stat("purged_tracks_total", "Tracks purged by POST /admin/purge (every tier and seek table of each).", s.purges.Load),
		stat("purge_discarded_fills_total", "Fills whose bytes were discarded because their object was purged while they were in flight.", s.store.Stats.Discarded.Load),
		stat("warm_metas_total", "Object metadata loaded from the disk tier instead of upstream (warm restart).", s.store.Stats.WarmMetas.Load),
		stat("config_reloads_total", "Configuration reloads put in force (SIGHUP or POST /admin/reload).", s.reloads.Load),
		stat("config_reload_errors_total", "Configuration reloads refused (invalid file, or a field that needs a restart).", s.reloadErr.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: role + "_revoked_tracks", Help: "Taken-down tracks whose older tokens are refused."},
			func() float64 { return float64(s.Revoked()) }),
	)
	if d := s.store.Disk(); d != nil {
		reg.MustRegister(
			stat("disk_hits_total", "Chunk reads served from the disk tier (counted in cache_hits_total too).", d.Hits.Load),
			stat("disk_corrupt_total", "Chunk files that failed their checksum and were dropped.", d.Corrupt.Load),
			stat("disk_writes_dropped_total", "Chunk writes skipped because the disk writer was behind.", d.Dropped.Load),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: role + "_disk_bytes", Help: "Bytes held by the disk tier."},
				func() float64 { return float64(d.Used()) }),
		)
	}
	if s.route != nil {
		reg.MustRegister(
			stat("peer_served_total", "Peer requests from other edges served as the owner (filled from shields if missing).", s.peerHits.Load),
			stat("peer_misrouted_total", "Peer requests for tracks this node does not believe it owns (served from upstream, never forwarded).", s.misroute.Load),
			stat("peer_fills_total", "Hot-store fills sent to the owning edge.", s.hotFetch.peerAttempts.Load),
			stat("peer_fill_failures_total", "Peer fills that failed and went to a shield instead.", s.hotFetch.peerFailures.Load),
			stat("peer_fill_bytes_total", "Bytes received from owning edges.", s.hotFetch.peerBytes.Load),
			stat("peer_skipped_total", "Peer fills not sent to the owning edge because passive health marked it down (filled from a shield).", s.hotFetch.peerSkipped.Load),
			stat("peer_hedged_total", "Peer fills also sent to the shields because the owner had not answered within peer_hedge_after.", s.hotFetch.hedged.Load),
			stat("peer_hedge_wins_total", "Hedged peer fills the shields answered first.", s.hotFetch.hedgeWins.Load),
			stat("hot_cache_hits_total", "Chunk reads of tracks other edges own, served from the hot cache.", s.hot.Stats.Hits.Load),
			stat("hot_cache_misses_total", "Chunk reads of tracks other edges own that needed a peer fill.", s.hot.Stats.Misses.Load),
			stat("hot_collapsed_total", "Hot-store reads that joined a peer fill in flight.", s.hot.Stats.Collapsed.Load),
			stat("handoff_fills_total", "Owner misses asked first of the edge that held the track before a membership change (rolling restarts).", s.fetch.handoffs.Load),
			stat("handoff_hits_total", "Handoff fills that the previous holder answered from its cache (no shield request).", s.fetch.handoffHits.Load),
		)
	}
	if mf := s.manifests; mf != nil {
		reg.MustRegister(
			stat("manifest_snapshot_pulls_total", "Snapshot pulls from the origin.", mf.pulls.Load),
			stat("manifest_snapshot_failures_total", "Snapshot pulls that failed (the last snapshot stays in use up to manifest.max_age).", mf.pullFailures.Load),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: role + "_manifest_snapshot_age_seconds", Help: "Time since the origin last gave or confirmed the snapshot manifests are minted from (-1: none)."},
				func() float64 {
					if mf.snap.Load() != nil {
						return mf.age().Seconds()
					}
					return -1
				}),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: role + "_manifest_snapshot_tracks", Help: "Tracks in the snapshot."},
				func() float64 {
					if snap := mf.snap.Load(); snap != nil {
						return float64(snap.Len())
					}
					return 0
				}),
		)
		for i, code := range []string{"200", "403", "404", "503", "401"} {
			reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: role + "_manifests_total",
				Help: "Manifests minted from the snapshot, by status code.", ConstLabels: prometheus.Labels{"code": code}},
				func() float64 { return float64(mf.served[i].Load()) }))
		}
	}
	if p := s.prefetch; p != nil {
		reg.MustRegister(
			stat("prefetch_issued_total", "Next-track prefetches started.", p.issued.Load),
			stat("prefetch_useful_total", "Prefetched tracks a player then asked for.", p.useful.Load),
			stat("prefetch_dropped_total", "Prefetch requests dropped because the queue was full.", p.dropped.Load),
			stat("prefetch_failed_total", "Prefetches that failed.", p.failed.Load),
			stat("prefetch_jobs_total", "Track starts whose next tracks were looked up (hint or recommendations).", p.jobs.Load),
		)
	}
}

func (m *metrics) observe(code int, d time.Duration) {
	if code >= 0 && code < len(m.byCode) && m.byCode[code] != nil {
		m.byCode[code].Inc()
	} else {
		m.requests.WithLabelValues(itoa3(code)).Inc()
	}
	m.latency.Observe(d.Seconds())
}

func (m *metrics) tokenRejected(r tokenReason) { m.tokens[r].Inc() }

type tokenReason int

const (
	tokenMissing tokenReason = iota
	tokenMalformed
	tokenUnknownKey
	tokenSignature
	tokenExpired
	tokenCountry     // the token is for another country than the header's
	tokenTier        // a fill endpoint without a valid tier credential
	tokenTTL         // expiry further ahead than token_max_ttl
	countryMissing   // country_header configured, not sent
	countryDuplicate // country_header sent more than once
	countryInvalid   // country_header not an assigned ISO 3166-1 code
	tokenRevoked     // a token of a track taken down after it was issued
	tokenReasons
)

var tokenReasonNames = [tokenReasons]string{"missing", "malformed", "unknown_key", "signature", "expired", "country", "tier",
	"ttl", "country_missing", "country_duplicate", "country_invalid", "revoked"}

func reasonOf(err error) tokenReason {
	switch {
	case errors.Is(err, urlsign.ErrExpired):
		return tokenExpired
	case errors.Is(err, urlsign.ErrSignature):
		return tokenSignature
	case errors.Is(err, urlsign.ErrUnknownKey):
		return tokenUnknownKey
	}
	return tokenMalformed
}

func itoa3(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}
