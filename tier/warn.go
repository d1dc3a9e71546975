package tier

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// warnLimiter logs one warning per key (an upstream) per interval, with
// the number of like warnings it held back since the last one: an
// upstream that fails every request costs the log one line per interval,
// not one per request (a shield logged 850 in 20 s with its origin down).
type warnLimiter struct {
	every time.Duration

	mu   sync.Mutex
	keys map[string]*warnState
}

type warnState struct {
	last       time.Time
	suppressed int
}

// maxWarnKeys bounds the keys remembered; more share one key.
const maxWarnKeys = 64

func newWarnLimiter(every time.Duration) *warnLimiter {
	return &warnLimiter{every: every, keys: map[string]*warnState{}}
}

// allow reports whether a warning for key may be logged at now, and how
// many were held back since the last one that was.
func (w *warnLimiter) allow(key string, now time.Time) (ok bool, suppressed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.keys[key]
	if st == nil {
		if len(w.keys) >= maxWarnKeys {
			key = "other"
			st = w.keys[key]
		}
		if st == nil {
			st = &warnState{}
			w.keys[key] = st
		}
	}
	if !st.last.IsZero() && now.Sub(st.last) < w.every {
		st.suppressed++
		return false, 0
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// log writes msg at Warn level if allowed for key, with the count of the
// warnings held back since the last one.
func (w *warnLimiter) log(l *slog.Logger, now time.Time, key, msg string, args ...any) {
	ok, n := w.allow(key, now)
	if !ok {
		return
	}
	if n > 0 {
		args = append(args, "suppressed", n, "every", w.every.String())
	}
	l.Warn(msg, append(args, "upstream", key)...)
}

// upstreamOf is the upstream base URL an error of the fetcher names
// ("http://host:port: ..."), or "" if none.
func upstreamOf(err error) string {
	s := err.Error()
	i := strings.Index(s, "http://")
	if j := strings.Index(s, "https://"); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, ": "); j >= 0 {
		s = s[:j]
	}
	return s
}
