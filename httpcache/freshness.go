package httpcache

import (
	"strconv"
	"strings"
	"time"

	"github.com/musiccdn/cdn/httprange"
)

// heuristicStatus reports whether status is heuristically cacheable
// (RFC 9110 §15.1): it may be stored and given a heuristic lifetime
// without explicit freshness.
func heuristicStatus(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus reports whether the cache knows status's semantics
// (for must-understand, RFC 9111 §5.2.2.3).
func understoodStatus(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 410, 414, 500, 501, 502, 503, 504:
		return true
	}
	return false
}

// Storable reports whether a shared cache may store the response to a
// request (RFC 9111 §3): method, status and directives, Authorization
// (§3.5) and Vary: * (§4.1: it never matches, so it is not worth
// storing). surrogate names this cache for Surrogate-Control (W3C Edge
// Architecture): its max-age or no-store, when given for this cache,
// decides over Cache-Control; "" ignores Surrogate-Control.
func Storable(method string, req Header, status int, resp Header, surrogate string) bool {
	if method != "GET" {
		return false // the only method this cache stores (§2: POST needs Content-Location)
	}
	if status < 200 || status == 304 {
		return false
	}
	rq := RequestDirectives(req)
	if rq.NoStore {
		return false
	}
	cc := ParseCacheControl(resp.Values("Cache-Control")...)
	if req.Has("Authorization") && !cc.Public && !cc.MustRevalidate && cc.SMaxAge == Absent {
		return false
	}
	for _, v := range resp.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == "*" {
				return false
			}
		}
	}
	if status == 206 && !validContentRange(resp.Get("Content-Range")) {
		return false
	}
	if surrogate != "" {
		if sc, ok := SurrogateDirectives(resp.Values("Surrogate-Control"), surrogate); ok {
			if sc.NoStore {
				return false
			}
			if sc.MaxAge != Absent {
				return heuristicStatus(status) || understoodStatus(status)
			}
		}
	}
	if cc.MustUnderstand {
		if !understoodStatus(status) {
			return false
		}
		// must-understand overrides no-store for an understood status.
	} else if cc.NoStore {
		return false
	}
	if cc.Private {
		return false
	}
	return cc.Public || resp.Has("Expires") || cc.MaxAge != Absent || cc.SMaxAge != Absent ||
		heuristicStatus(status) || cc.NoCache
}

func validContentRange(v string) bool {
	_, _, ok := httprange.ParseContentRange([]byte(v))
	return ok
}

// RequestDirectives parses a request's Cache-Control. Pragma is ignored:
// RFC 9111 §5.4 deprecates it (RFC 7234 read Pragma: no-cache as
// Cache-Control: no-cache; Varnish and Fastly ignore it too).
func RequestDirectives(req Header) Directives {
	return ParseCacheControl(req.Values("Cache-Control")...)
}

// Heuristic bounds heuristic freshness (RFC 9111 §4.2.2): a fraction of
// the time since Last-Modified, at most Max.
type Heuristic struct {
	Percent int           // of (Date - Last-Modified); 10 as the RFC suggests
	Max     time.Duration // cap; 24 h (beyond, §5.5 would want a warning)
}

// FreshnessLifetime is a shared cache's freshness lifetime of a response
// (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires - Date, else a
// heuristic for a heuristically cacheable status (§4.2.2) or a public
// response. date is the response's Date (the response time when absent).
func FreshnessLifetime(status int, h Header, cc Directives, date time.Time, heur Heuristic) time.Duration {
	if cc.Invalid {
		return 0
	}
	if cc.surrogate {
		return secs(cc.surrogateMaxAge)
	}
	if cc.SMaxAge != Absent {
		return secs(cc.SMaxAge)
	}
	if cc.MaxAge != Absent {
		return secs(cc.MaxAge)
	}
	if ex := h.Values("Expires"); len(ex) > 0 {
		// An invalid date, "0" included, means already expired (§5.3).
		// Common malformations are read as browsers read them; of
		// several lines the first is used (§4.2.1's choice).
		t, ok := ParseDateLenient(ex[0])
		if !ok {
			return 0
		}
		return max(t.Sub(date), 0)
	}
	if (heuristicStatus(status) || cc.Public) && heur.Percent > 0 {
		if lm, ok := parseHTTPDate(h.Get("Last-Modified")); ok && lm.Before(date) {
			return min(date.Sub(lm)*time.Duration(heur.Percent)/100, heur.Max)
		}
	}
	return 0
}

func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

// Age is the §4.2.3 age calculation's input, recorded when a response is
// received.
type Age struct {
	Value        int64     // the Age field in seconds (0 if absent or invalid)
	Invalid      bool      // the Age field was not one delta-seconds
	Date         time.Time // Date field, or ResponseTime when absent
	RequestTime  time.Time // when the request that got it was sent
	ResponseTime time.Time // when the response was received
}

// ParseAge reads an Age value (RFC 9111 §5.1): one field line of
// delta-seconds. Anything else (a list, a second line, a sign, a
// fraction, parameters) is invalid: ok is false and the response is to be
// treated as stale, since its age is unknown.
func ParseAge(h Header) (age int64, ok bool) {
	v := h.Values("Age")
	if len(v) == 0 {
		return 0, true
	}
	if len(v) > 1 {
		return 0, false
	}
	return parseDelta(strings.TrimSpace(v[0]))
}

// NewAge records a response's age inputs.
func NewAge(h Header, requestTime, responseTime time.Time) Age {
	d, ok := parseHTTPDate(h.Get("Date"))
	if !ok {
		d = responseTime
	}
	v, ok := ParseAge(h)
	return Age{Value: v, Invalid: !ok, Date: d, RequestTime: requestTime, ResponseTime: responseTime}
}

// Current is the response's current age at now (RFC 9111 §4.2.3).
func (a Age) Current(now time.Time) time.Duration {
	apparent := max(a.ResponseTime.Sub(a.Date), 0)
	delay := a.ResponseTime.Sub(a.RequestTime)
	corrected := secs(a.Value) + delay
	initial := max(apparent, corrected)
	return initial + now.Sub(a.ResponseTime)
}

// AgeHeader formats an age as delta-seconds, rounded down and capped.
func AgeHeader(d time.Duration) string {
	return strconv.FormatInt(min(int64(max(d, 0)/time.Second), maxDelta), 10)
}
