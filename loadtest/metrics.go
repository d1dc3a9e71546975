package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Snapshot is one scrape of a node's /metrics: each counter, gauge or
// untyped family's value summed over its series.
type Snapshot map[string]float64

// Scrape fetches base+"/metrics" and parses the Prometheus text format.
func Scrape(ctx context.Context, c *http.Client, base string) (Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", base, err)
	}
	// Ask for text: this parser does not read the protobuf format.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", base, resp.StatusCode)
	}
	return ParseMetrics(io.LimitReader(resp.Body, 16<<20))
}

// ParseMetrics reads the Prometheus text exposition format.
func ParseMetrics(r io.Reader) (Snapshot, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	s := make(Snapshot, len(fams))
	for name, f := range fams {
		sum := 0.0
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				sum += m.GetUntyped().GetValue()
			default:
				continue
			}
		}
		s[name] = sum
	}
	return s, nil
}

// tierSnapshots is one scrape of every node, summed per tier.
type tierSnapshots struct {
	edge, shield, origin Snapshot
	errs                 []string
}

// delta returns after-before of a counter, and whether both scrapes had
// the node tier (a counter absent from a successful scrape counts as 0:
// client_golang creates labelled series lazily).
func delta(before, after Snapshot, name string) (float64, bool) {
	if before == nil || after == nil {
		return 0, false
	}
	_, seen := after[name]
	return after[name] - before[name], seen
}

func ratio(hits, total float64) *float64 {
	if total <= 0 {
		return nil
	}
	r := hits / total
	return &r
}

// applyMetrics fills the tier-level figures from the scrapes before and
// after the run.
func (res *Result) applyMetrics(before, after tierSnapshots) {
	if h, ok := delta(before.edge, after.edge, "edge_cache_hits_total"); ok {
		m, _ := delta(before.edge, after.edge, "edge_cache_misses_total")
		res.EdgeChunkHitRatio = ratio(h, h+m)
	}
	if sb, ok := delta(before.shield, after.shield, "shield_bytes_served_total"); ok && res.Bytes > 0 {
		// Every byte the shields served went to an edge: what the edges
		// did not have to fetch, over what the players received.
		off := 1 - sb/float64(res.Bytes)
		res.EdgeOffload = &off
		res.ShieldBytes = int64(sb)
	}
	if h, ok := delta(before.shield, after.shield, "shield_cache_hits_total"); ok {
		m, _ := delta(before.shield, after.shield, "shield_cache_misses_total")
		res.ShieldHitRatio = ratio(h, h+m)
	}
	if o, ok := delta(before.origin, after.origin, "origin_media_requests_total"); ok {
		n := int64(o)
		res.OriginRequests = &n
	}
	if eb, ok := delta(before.edge, after.edge, "edge_bytes_served_total"); ok {
		res.EdgeBytesServed = int64(eb)
	}
	errs := append(before.errs, after.errs...)
	sort.Strings(errs)
	errs = compactStrings(errs)
	if len(errs) > 0 {
		res.MetricsNote = "scrape failed: " + strings.Join(errs, "; ")
	}
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// nodeScrapes is one scrape of every node, by tier and base URL (nil:
// the scrape failed).
type nodeScrapes struct {
	tiers map[string]map[string]Snapshot // "edge", "shield", "origin"
	errs  []string
}

func scrapeNodes(ctx context.Context, c *http.Client, t Targets) nodeScrapes {
	ns := nodeScrapes{tiers: map[string]map[string]Snapshot{}}
	origin, edges, shields := t.MetricsURLs()
	for tier, bases := range map[string][]string{"edge": edges, "shield": shields, "origin": {origin}} {
		m := map[string]Snapshot{}
		for _, b := range bases {
			s, err := Scrape(ctx, c, b)
			if err != nil {
				ns.errs = append(ns.errs, err.Error())
			}
			m[b] = s
		}
		ns.tiers[tier] = m
	}
	return ns
}

// counterDeltas sums, per tier, each node's counter increases between
// successive scrapes. A counter lower than at the previous scrape was
// reset (the process restarted): its increase is its new value, so a
// restart loses at most what the dead process counted after its last
// scrape, instead of subtracting the whole history. A node that does
// not answer a scrape keeps its last values.
type counterDeltas struct {
	mu   sync.Mutex
	prev map[string]Snapshot // by tier+base
	acc  map[string]Snapshot // by tier
	errs []string
	// resets counts counters seen going down, for the report.
	resets int
}

func newCounterDeltas() *counterDeltas {
	return &counterDeltas{prev: map[string]Snapshot{}, acc: map[string]Snapshot{}}
}

func (d *counterDeltas) add(ns nodeScrapes) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errs = append(d.errs, ns.errs...)
	for tier, nodes := range ns.tiers {
		for base, s := range nodes {
			if s == nil {
				continue
			}
			acc := d.acc[tier]
			if acc == nil {
				acc = Snapshot{}
				d.acc[tier] = acc
			}
			key := tier + " " + base
			prev, seen := d.prev[key]
			d.prev[key] = s
			if !seen {
				for name := range s {
					acc[name] += 0 // present: a later increase is a real delta
				}
				continue
			}
			for name, v := range s {
				p := prev[name]
				switch {
				case v >= p:
					acc[name] += v - p
				default:
					d.resets++
					acc[name] += v
				}
			}
		}
	}
}

// snapshots returns before (zeros) and after (the summed increases) in
// the shape applyMetrics reads.
func (d *counterDeltas) snapshots() (before, after tierSnapshots) {
	d.mu.Lock()
	defer d.mu.Unlock()
	zero := func(s Snapshot) Snapshot {
		if s == nil {
			return nil
		}
		return Snapshot{}
	}
	after = tierSnapshots{edge: d.acc["edge"], shield: d.acc["shield"], origin: d.acc["origin"], errs: d.errs}
	before = tierSnapshots{edge: zero(after.edge), shield: zero(after.shield), origin: zero(after.origin)}
	return before, after
}
