package loadtest

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestCounterDeltasReset: a node restarted between scrapes (its counter
// went down) adds its new value, not a negative delta. The case:
// 8,756 reported where the processes counted 13,884. Catches: plain
// after-before (a negative share), a reset ignored (the restarted
// process's count lost).
func TestCounterDeltasReset(t *testing.T) {
	d := newCounterDeltas()
	scrape := func(a, b float64) nodeScrapes {
		return nodeScrapes{tiers: map[string]map[string]Snapshot{
			"origin": {"o": {"origin_media_requests_total": a}},
			"edge":   {"e1": {"edge_bytes_served_total": b}, "e2": nil}, // e2 down
		}}
	}
	d.add(scrape(1000, 10)) // before the run
	d.add(scrape(6000, 20)) // +5000
	d.add(scrape(1500, 25)) // restarted: +1500 (what it counted since)
	d.add(scrape(9884, 30)) // +8384
	before, after := d.snapshots()
	if got, ok := delta(before.origin, after.origin, "origin_media_requests_total"); !ok || got != 5000+1500+8384 {
		t.Errorf("origin requests = %v (%v), want %v", got, ok, 5000+1500+8384)
	}
	if got, _ := delta(before.edge, after.edge, "edge_bytes_served_total"); got != 20 {
		t.Errorf("edge bytes = %v, want 20", got)
	}
	if d.resets != 1 {
		t.Errorf("resets = %d, want 1", d.resets)
	}
}

// TestRecorderCountsFailuresInAllPercentiles: a failed request is in the
// all-requests percentiles at its time to failure, not in the
// successful-only ones, and track starts and their errors are counted.
// Catches: failures left out of ttfbAll (the better-looking p99
// with an edge down), failures in the ok-only percentiles.
func TestRecorderCountsFailuresInAllPercentiles(t *testing.T) {
	start := time.Unix(0, 0)
	r := newRecorder(start)
	var log bytes.Buffer
	r.log = newTestLog(&log)
	for i := 0; i < 98; i++ {
		r.observe(start.Add(time.Second), Observation{TTFB: 10 * time.Millisecond, Edge: 0})
	}
	r.observe(start.Add(time.Second), Observation{TTFB: 5 * time.Second, Total: 5 * time.Second, Err: "timeout", Edge: 1})
	r.observe(start.Add(time.Second), Observation{TTFB: 5 * time.Second, Total: 5 * time.Second, Err: "timeout", Edge: 1})
	r.trackStart(start.Add(time.Second), start, -1, 0, false)
	r.trackStart(start.Add(time.Second), start, -1, 0, true)
	r.log.w.Flush()
	res := r.result(2 * time.Second)
	if res.TTFBP99MS > 20 {
		t.Errorf("ok-only p99 %v ms, want about 10", res.TTFBP99MS)
	}
	if res.AllTTFBP99MS < 4000 {
		t.Errorf("all-requests p99 %v ms, want the failures' 5000", res.AllTTFBP99MS)
	}
	if res.TrackStarts != 2 || res.TrackStartErrors != 1 {
		t.Errorf("track starts %d errors %d, want 2 and 1", res.TrackStarts, res.TrackStartErrors)
	}
	if p := res.Timeline[1]; p.ErrorRate != 0.02 {
		t.Errorf("second 1 error rate %v, want 0.02", p.ErrorRate)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 102 || lines[98] != "-4000,range,1,5000.000,0,0" || lines[101] != "0,manifest,-1,1000.000,0,0" {
		t.Errorf("request log: %d lines, %q ... %q", len(lines), lines[min(98, len(lines)-1)], lines[len(lines)-1])
	}
}

// TestRetriable: what a load balancer retries at another edge.
func TestRetriable(t *testing.T) {
	for err, want := range map[string]bool{"": false, "timeout": true, "refused": true, "http_502": true, "http_504": true, "http_403": false, "http_404": false} {
		if got := retriable(Observation{Err: err}); got != want {
			t.Errorf("retriable(%q) = %v, want %v", err, got, want)
		}
	}
}

func newTestLog(w *bytes.Buffer) *requestLog { return &requestLog{w: bufio.NewWriter(w)} }

// TestHomeAttribution: a request due before the session failed over is
// counted against the edge it was on then. Catches: attribution to the
// edge the request was finally sent to (a hung edge's listeners counted
// as the other edges').
func TestHomeAttribution(t *testing.T) {
	t0 := time.Unix(100, 0)
	h := &home{cur: 1}
	if got := h.at(t0); got != 1 {
		t.Fatalf("before any move: %d", got)
	}
	h.move(2, t0.Add(10*time.Second))
	for _, c := range []struct {
		due  time.Duration
		want int
	}{{5 * time.Second, 1}, {10 * time.Second, 2}, {11 * time.Second, 2}} {
		if got := h.at(t0.Add(c.due)); got != c.want {
			t.Errorf("due +%v: edge %d, want %d", c.due, got, c.want)
		}
	}
}
