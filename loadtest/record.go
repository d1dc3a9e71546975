package loadtest

import (
	"bufio"
	"sort"
	"strconv"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Observation is the outcome of one range request.
type Observation struct {
	Kbps    int
	Outcome Outcome
	// TTFB and Total are measured from when the request was due, not from
	// when it was sent, so a stalled target shows in the percentiles.
	TTFB, Total time.Duration
	Bytes       int64
	// Err is the error kind ("" if none); Verify the verify failure kind
	// ("" if every byte checked out).
	Err, Verify string
	// Edge is the index (in Targets.Edges) of the edge the listener was
	// on when the request was due, -1 for none; Home the edge its
	// session started on (its listener's edge before any failover).
	Edge, Home int
}

// Histogram bounds: 1 µs to 5 minutes, in microseconds.
const (
	histMin = 1
	histMax = 300_000_000
)

func newHist(sig int) *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, sig) }

func recordHist(h *hdrhistogram.Histogram, d time.Duration) {
	us := min(max(d.Microseconds(), histMin), histMax)
	_ = h.RecordValue(us)
}

// recorder accumulates observations. One mutex is enough: a request costs
// far more than the few counter updates made under it.
type recorder struct {
	start time.Time

	mu          sync.Mutex
	ttfb, total *hdrhistogram.Histogram
	// ttfbAll holds every range request, a failed one at its time to
	// failure: the percentiles a listener lives with. ttfb holds the
	// successful ones only.
	ttfbAll          *hdrhistogram.Histogram
	trackStarts      int64 // manifest requests (a listener starting a track)
	trackStartErrors int64 // of which failed (not counting rights denials)
	failovers        int64 // requests retried at another edge after an error
	log              *requestLog
	byTier           map[int]*breakdownAcc
	byOutcome        [len(outcomeNames)]*breakdownAcc
	manifestLat      *hdrhistogram.Histogram
	requests         int64
	bytes            int64
	errors           int64
	verifyFailures   int64
	manifests        int64
	denied           int64
	sessions         int64
	plays            int64
	errKinds         map[string]int64
	verifyKinds      map[string]int64
	seconds          []*second
}

type breakdownAcc struct {
	requests, bytes int64
	ttfb, total     *hdrhistogram.Histogram
}

func newBreakdownAcc() *breakdownAcc {
	return &breakdownAcc{ttfb: newHist(3), total: newHist(3)}
}

// second is one wall-clock second of the run, for the charts over time.
type second struct {
	requests, bytes, errors int64
	hits, lookups           int64
	ttfb                    *hdrhistogram.Histogram
	ttfbAll                 *hdrhistogram.Histogram // failed requests at their time to failure too
}

func newRecorder(start time.Time) *recorder {
	r := &recorder{
		start:       start,
		ttfb:        newHist(3),
		ttfbAll:     newHist(3),
		total:       newHist(3),
		manifestLat: newHist(3),
		byTier:      make(map[int]*breakdownAcc),
		errKinds:    make(map[string]int64),
		verifyKinds: make(map[string]int64),
	}
	for i := range r.byOutcome {
		r.byOutcome[i] = newBreakdownAcc()
	}
	return r
}

func (r *recorder) secondLocked(now time.Time) *second {
	i := max(int(now.Sub(r.start)/time.Second), 0)
	for len(r.seconds) <= i {
		r.seconds = append(r.seconds, &second{ttfb: newHist(2), ttfbAll: newHist(2)})
	}
	return r.seconds[i]
}

func (r *recorder) observe(now time.Time, o Observation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sec := r.secondLocked(now)
	r.requests++
	sec.requests++
	r.bytes += o.Bytes
	sec.bytes += o.Bytes
	recordHist(r.ttfbAll, o.TTFB)
	recordHist(sec.ttfbAll, o.TTFB)
	// Logged at its due time, so a window holds the requests due in it.
	r.log.write(now.Sub(r.start)-o.Total, "range", o.Edge, o.Home, o.TTFB, o.Err == "" && o.Verify == "")
	if o.Err != "" {
		r.errors++
		sec.errors++
		r.errKinds[o.Err]++
		return
	}
	if o.Verify != "" {
		r.verifyFailures++
		r.verifyKinds[o.Verify]++
	}
	recordHist(r.ttfb, o.TTFB)
	recordHist(r.total, o.Total)
	recordHist(sec.ttfb, o.TTFB)
	if o.Outcome != OutcomeNone {
		sec.lookups++
		if o.Outcome == OutcomeHit {
			sec.hits++
		}
	}
	t := r.byTier[o.Kbps]
	if t == nil {
		t = newBreakdownAcc()
		r.byTier[o.Kbps] = t
	}
	for _, b := range []*breakdownAcc{t, r.byOutcome[o.Outcome]} {
		b.requests++
		b.bytes += o.Bytes
		recordHist(b.ttfb, o.TTFB)
		recordHist(b.total, o.Total)
	}
}

func (r *recorder) fail(now time.Time, kind string) { r.failN(now, kind, 1) }

func (r *recorder) failN(now time.Time, kind string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors += n
	r.secondLocked(now).errors += n
	r.errKinds[kind] += n
}

// trackStart counts a listener starting a track (a manifest request) and
// whether that failed.
func (r *recorder) trackStart(now, due time.Time, edge, home int, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trackStarts++
	if failed {
		r.trackStartErrors++
	}
	r.log.write(due.Sub(r.start), "manifest", edge, home, now.Sub(due), !failed)
}

func (r *recorder) failover() {
	r.mu.Lock()
	r.failovers++
	r.mu.Unlock()
}

func (r *recorder) manifest(now, due time.Time, denied bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifests++
	if denied {
		r.denied++
	}
	recordHist(r.manifestLat, now.Sub(due))
}

func (r *recorder) sessionStarted() {
	r.mu.Lock()
	r.sessions++
	r.mu.Unlock()
}

func (r *recorder) playSent() {
	r.mu.Lock()
	r.plays++
	r.mu.Unlock()
}

// progress is the state the live line shows.
type progress struct {
	elapsed                 time.Duration
	requests, bytes, errors int64
	verifyFailures          int64
	p99                     time.Duration // over the last completed second
	hitRatio                float64       // cumulative, from Cache-Status
}

func (r *recorder) progress(now time.Time) progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := progress{elapsed: now.Sub(r.start), requests: r.requests, bytes: r.bytes, errors: r.errors, verifyFailures: r.verifyFailures, hitRatio: -1}
	if i := int(p.elapsed/time.Second) - 1; i >= 0 && i < len(r.seconds) {
		p.p99 = time.Duration(r.seconds[i].ttfb.ValueAtQuantile(99)) * time.Microsecond
	}
	var hits, lookups int64
	for _, s := range r.seconds {
		hits += s.hits
		lookups += s.lookups
	}
	if lookups > 0 {
		p.hitRatio = float64(hits) / float64(lookups)
	}
	return p
}

func ms(h *hdrhistogram.Histogram, q float64) float64 {
	if h.TotalCount() == 0 {
		return 0
	}
	return float64(h.ValueAtQuantile(q)) / 1000
}

func (b *breakdownAcc) summary(name string) Breakdown {
	return Breakdown{
		Name: name, Requests: b.requests, Bytes: b.bytes,
		TTFBP50MS: ms(b.ttfb, 50), TTFBP99MS: ms(b.ttfb, 99), TTFBP999MS: ms(b.ttfb, 99.9),
		TotalP50MS: ms(b.total, 50), TotalP99MS: ms(b.total, 99), TotalP999MS: ms(b.total, 99.9),
	}
}

func (r *recorder) result(d time.Duration) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := d.Seconds()
	res := &Result{
		Requests:         r.requests,
		Errors:           r.errors,
		VerifyFailures:   r.verifyFailures,
		Bytes:            r.bytes,
		DurationS:        secs,
		RPS:              float64(r.requests) / secs,
		Mbps:             float64(r.bytes) * 8 / 1e6 / secs,
		MBPerS:           float64(r.bytes) / 1e6 / secs,
		TTFBP50MS:        ms(r.ttfb, 50),
		TTFBP99MS:        ms(r.ttfb, 99),
		TTFBP999MS:       ms(r.ttfb, 99.9),
		TTFBMaxMS:        float64(r.ttfb.Max()) / 1000,
		AllTTFBP50MS:     ms(r.ttfbAll, 50),
		AllTTFBP99MS:     ms(r.ttfbAll, 99),
		AllTTFBP999MS:    ms(r.ttfbAll, 99.9),
		TrackStarts:      r.trackStarts,
		TrackStartErrors: r.trackStartErrors,
		Failovers:        r.failovers,
		TotalP50MS:       ms(r.total, 50),
		TotalP99MS:       ms(r.total, 99),
		TotalP999MS:      ms(r.total, 99.9),
		ManifestRequests: r.manifests,
		ManifestP99MS:    ms(r.manifestLat, 99),
		Denied:           r.denied,
		Sessions:         r.sessions,
		PlaysSent:        r.plays,
		ErrorsByKind:     copyMap(r.errKinds),
		VerifyByKind:     copyMap(r.verifyKinds),
	}
	tiers := make([]int, 0, len(r.byTier))
	for k := range r.byTier {
		tiers = append(tiers, k)
	}
	sort.Ints(tiers)
	for _, k := range tiers {
		res.ByTier = append(res.ByTier, r.byTier[k].summary(strconv.Itoa(k)))
	}
	var hitReq, hitBytes, lookReq, lookBytes int64
	for i, b := range r.byOutcome {
		if b.requests == 0 {
			continue
		}
		res.ByOutcome = append(res.ByOutcome, b.summary(outcomeNames[i]))
		if Outcome(i) != OutcomeNone {
			lookReq += b.requests
			lookBytes += b.bytes
		}
		if Outcome(i) == OutcomeHit {
			hitReq, hitBytes = b.requests, b.bytes
		}
	}
	if lookReq > 0 {
		res.EdgeHitRatio = float64(hitReq) / float64(lookReq)
	}
	if lookBytes > 0 {
		res.EdgeByteHitRatio = float64(hitBytes) / float64(lookBytes)
	}
	for i, s := range r.seconds {
		pt := Point{T: float64(i + 1), Requests: s.requests, Bytes: s.bytes, Errors: s.errors, HitRatio: -1,
			TTFBP50MS: ms(s.ttfb, 50), TTFBP99MS: ms(s.ttfb, 99), TTFBP999MS: ms(s.ttfb, 99.9),
			AllTTFBP99MS: ms(s.ttfbAll, 99)}
		if s.requests > 0 {
			pt.ErrorRate = float64(s.errors) / float64(s.requests)
		}
		if s.lookups > 0 {
			pt.HitRatio = float64(s.hits) / float64(s.lookups)
		}
		res.Timeline = append(res.Timeline, pt)
	}
	return res
}

func copyMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// requestLog writes one CSV line per range request and track start, for
// tools that cut a run into windows (bench/chaos.sh):
// "t_ms,kind,edge,ttfb_ms,ok,home" with t_ms when the request was due,
// since the start of the run (a range request is logged as it ends), kind
// "range" or "manifest", edge the index in Targets.Edges of the edge the
// listener was on then (-1: none), ok 1 or 0, home the edge the session
// started on. A nil log writes nothing. Callers hold the recorder's mutex.
type requestLog struct {
	w   *bufio.Writer
	buf []byte
}

func (l *requestLog) write(at time.Duration, kind string, edge, home int, ttfb time.Duration, ok bool) {
	if l == nil {
		return
	}
	b := l.buf[:0]
	b = strconv.AppendInt(b, at.Milliseconds(), 10)
	b = append(b, ',')
	b = append(b, kind...)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(edge), 10)
	b = append(b, ',')
	b = strconv.AppendFloat(b, float64(ttfb.Microseconds())/1000, 'f', 3, 64)
	if ok {
		b = append(b, ",1,"...)
	} else {
		b = append(b, ",0,"...)
	}
	b = strconv.AppendInt(b, int64(home), 10)
	b = append(b, '\n')
	l.buf = b
	l.w.Write(b)
}
