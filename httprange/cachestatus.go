package httprange

import (
	"strconv"
	"strings"
)

// CacheOutcome is what one cache did with a request, as its Cache-Status
// member says (RFC 9211).
type CacheOutcome int

// Outcomes a member of Cache-Status can carry.
const (
	CacheNone  CacheOutcome = iota // no Cache-Status
	CacheHit                       // "; hit"
	CacheMiss                      // "; fwd=miss" (or any other fwd)
	CacheStale                     // served stale ("; detail=stale" or fwd=stale)
)

var outcomeNames = [...]string{"none", "hit", "miss", "stale"}

func (o CacheOutcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return "CacheOutcome(" + strconv.Itoa(int(o)) + ")"
	}
	return outcomeNames[o]
}

// CacheStatus is the Cache-Status member a node named node writes for o:
// "node; hit", "node; fwd=miss; stored" or "node; hit; detail=stale". A
// server computes the three once, at start, so the hot path only copies
// bytes.
func CacheStatus(node string, o CacheOutcome) string {
	switch o {
	case CacheHit:
		return node + "; hit"
	case CacheStale:
		return node + "; hit; detail=stale"
	case CacheMiss:
		return node + "; fwd=miss; stored"
	}
	return node
}

// ParseCacheStatus classifies a Cache-Status header (RFC 9211). Members
// are ordered from the origin towards the client, so the last one is the
// nearest cache's (the edge's, for a player).
func ParseCacheStatus(h string) CacheOutcome {
	if h == "" {
		return CacheNone
	}
	if i := strings.LastIndexByte(h, ','); i >= 0 {
		h = h[i+1:]
	}
	_, params, _ := strings.Cut(h, ";")
	out := CacheNone
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		v = strings.Trim(v, `"`)
		switch {
		case k == "hit":
			if out == CacheNone {
				out = CacheHit
			}
		case k == "fwd" && v == "stale", k == "detail" && strings.Contains(v, "stale"):
			out = CacheStale
		case k == "fwd":
			if out != CacheStale {
				out = CacheMiss
			}
		}
	}
	return out
}
