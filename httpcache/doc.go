// Package httpcache is a shared HTTP cache following RFC 9111, for the
// edge's and shield's http routes (package tier): cover art, lyrics and
// API responses, beside the chunked audio path.
//
// The decisions are pure functions, each tested by a table that names the
// section it follows: Storable (§3, §3.5), FreshnessLifetime (§4.2.1,
// heuristics §4.2.2), Age (§4.2.3, §5.1), SecondaryKey (Vary, §4.1),
// Conditional (§4.3.1), Selects304 and Update304 (§3.2, §4.3.4),
// InvalidationTargets (§4.4), Decide (§4.2.4, §5.2, stale-while-revalidate
// RFC 5861 §3, immutable RFC 8246), StaleIfError (RFC 5861 §4), and
// combining partial content (§3.4). Directives are read by
// ParseCacheControl, a small fuzzed parser (github.com/pquerna/cachecontrol
// is not served by this build's module proxy, and its shared-cache
// answers would still need the Vary, partial-content and Surrogate-Control
// handling written here); Surrogate-Control (W3C Edge Architecture, as
// Fastly honours it) is read for the cache named Config.Node, which
// announces itself upstream with Surrogate-Capability.
//
// Cache is the fasthttp handler that applies them. Storage: each stored
// response is an entry in the route's index (status, header fields,
// secondary key, age inputs, freshness), and its body is one or more
// blobs in the node's chunk store (cache.Store's Blob methods), keyed by
// a random id per entry and the piece's offset: memory, the shield's disk
// tier, eviction (W-TinyLFU) and the store's counters are shared with the
// audio path. A partial response is kept as disjoint pieces that merge as
// ranges arrive, and becomes a complete response when they cover it. An
// evicted body makes its entry a miss. The index is in memory (bounded by
// Config.MaxEntries): a restarted shield starts with an empty index, and
// the bodies its disk still holds age out by the disk's LRU.
//
// Requests: GET and HEAD are looked up by the target URI (path and query:
// a route has one origin) and Vary; concurrent plain misses of one URL
// collapse into one upstream request; a stale response is revalidated
// with its validators, and a 304 (or a matching 200 to HEAD, §4.3.5)
// updates it. The client's own preconditions are evaluated against the
// stored response, or forwarded when nothing is stored. Responses carry
// Age and a Cache-Status member (RFC 9211) after the upstream's. Unsafe
// and unknown methods are forwarded and invalidate the target and its
// same-host Location and Content-Location on a non-error response;
// CONNECT and TRACE are refused.
//
// Known deviations: fasthttp always writes its own Date, so a stored
// response's Date is not replayed (Age still carries its age); a list or
// repeated Age field makes a response uncacheable rather than merely
// stale; a 206 whose body length disagrees with its Content-Range is not
// stored.
package httpcache
