package plan

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Bytes formats b in decimal units (PB, TB, GB, MB, kB), as the mission
// quotes them.
func Bytes(b float64) string {
	for _, u := range []struct {
		s string
		v float64
	}{{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}} {
		if math.Abs(b) >= u.v {
			return fmt.Sprintf("%.4g %s", b/u.v, u.s)
		}
	}
	return fmt.Sprintf("%.0f B", b)
}

// Bits formats a rate in bit/s.
func Bits(b float64) string {
	for _, u := range []struct {
		s string
		v float64
	}{{"Tbit/s", 1e12}, {"Gbit/s", 1e9}, {"Mbit/s", 1e6}, {"kbit/s", 1e3}} {
		if math.Abs(b) >= u.v {
			return fmt.Sprintf("%.4g %s", b/u.v, u.s)
		}
	}
	return fmt.Sprintf("%.0f bit/s", b)
}

func pct(r float64) string { return fmt.Sprintf("%.2f%%", 100*r) }

// lines are the answers as (key, value) rows in a fixed order.
func (r *Result) lines() [][2]string {
	var out [][2]string
	add := func(k, v string) { out = append(out, [2]string{k, v}) }
	add("catalog_bytes", Bytes(r.CatalogBytes))
	add("track_bytes", Bytes(r.TrackBytes))
	add("mix_kbps", fmt.Sprintf("%.1f", r.MixKbps))
	add("skew", fmt.Sprintf("%.3g (%s)", r.Skew, r.SkewSource))
	f := func(k string, p *float64, format func(float64) string) {
		if p != nil {
			add(k, format(*p))
		}
	}
	n := func(k string, p *int64) {
		if p != nil {
			add(k, fmt.Sprint(*p))
		}
	}
	f("target_byte_hit_ratio", r.TargetHitRatio, pct)
	f("target_edge_cache_bytes", r.TargetEdgeCacheBytes, Bytes)
	f("edge_cache_bytes", r.EdgeCacheBytes, Bytes)
	f("edge_byte_hit_ratio", r.EdgeByteHitRatio, pct)
	f("edge_chunk_byte_hit_ratio", r.EdgeChunkHitRatio, pct)
	f("edge_offload", r.EdgeOffload, pct)
	f("fetch_overhead", r.FetchOverhead, func(v float64) string { return fmt.Sprintf("%.3f", v) })
	n("streams", r.Streams)
	f("edge_egress_bps", r.EdgeEgressBps, Bits)
	f("edge_throughput_bps", r.EdgeThroughputBps, Bits)
	n("edges_per_pop", r.EdgesPerPOP)
	f("shield_cache_bytes", r.ShieldCacheBytes, Bytes)
	f("shield_hit_ratio", r.ShieldHitRatio, pct)
	f("shield_egress_bps", r.ShieldEgressBps, Bits)
	n("shields_per_region", r.ShieldsPerRegion)
	f("origin_egress_bps", r.OriginEgressBps, Bits)
	f("origin_egress_bps_per_1000_streams", r.OriginEgressBpsPer1000Stream, Bits)
	f("plays_mean_per_s", r.PlaysMeanPerSec, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	f("plays_peak_per_s", r.PlaysPeakPerSec, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	n("plays_sinks", r.PlaysSinks)
	n("plays_partitions", r.PlaysPartitions)
	f("dedup_store_bytes", r.DedupStoreBytes, Bytes)
	return out
}

func formatInputs(in map[string]float64) string {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.6g", k, in[k])
	}
	return strings.Join(parts, " ")
}

// WriteText writes the answers, each followed by its formula and inputs.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range r.lines() {
		fmt.Fprintf(tw, "%s\t%s\n", l[0], l[1])
		if a, ok := r.Explain[l[0]]; ok {
			fmt.Fprintf(tw, "\t  = %s\n\t    %s\n", a.Formula, formatInputs(a.Inputs))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s := r.Simulation; s != nil {
		fmt.Fprintf(w, "\nsimulation: %d-track scaled catalog (%s), %d sessions, %.0f concurrent streams, %.0f s simulated (first %.0f s not counted), %.1f s\n",
			s.Tracks, Bytes(s.CatalogBytes), s.Sessions, s.Concurrency, s.SimulatedS, s.WarmupS, s.ElapsedS)
		fmt.Fprintf(w, "scaling: %s\n", s.ScalingRule)
		if s.CeilingByteHitRatio != nil {
			fmt.Fprintf(w, "ceiling: a cache holding every chunk gets %s in this simulation (first requests)\n", pct(*s.CeilingByteHitRatio))
		}
		fmt.Fprintf(w, "%10s %12s %14s %10s %10s %9s\n", "fraction", "cache", "sim cache", "byte hit", "chunk hit", "offload")
		for _, p := range s.Points {
			fmt.Fprintf(w, "%10.3g %12s %14s %10s %10s %9s\n", p.Fraction, Bytes(p.CacheBytes), Bytes(float64(p.SimCacheBytes)), pct(p.ByteHitRatio), pct(p.ChunkHitRatio), pct(p.Offload))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// WriteText writes the prediction next to the measurement.
func (r *LikeRunResult) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s\t\n", r.RunFile)
	fmt.Fprintf(tw, "\tpredicted\tmeasured\n")
	fmt.Fprintf(tw, "edge_byte_hit_ratio\t%s (%s to %s in %d replays)\t%s\n", pct(r.EdgeByteHitRatio), pct(r.EdgeByteHitRatioMin), pct(r.EdgeByteHitRatioMax), r.Replays, pct(r.MeasuredEdgeByteHitRatio))
	fmt.Fprintf(tw, "edge_hit_ratio\t%s\t%s\n", pct(r.EdgeHitRatio), pct(r.MeasuredEdgeHitRatio))
	m := func(p *float64) string {
		if p == nil {
			return "n/a"
		}
		return pct(*p)
	}
	fmt.Fprintf(tw, "edge_chunk_hit_ratio (metrics)\t%s to %s\t%s\n", pct(r.EdgeChunkHitRatioMin), pct(r.EdgeChunkHitRatioMax), m(r.MeasuredEdgeChunkHitRatio))
	fmt.Fprintf(tw, "edge_offload\t%s\t%s\n", pct(r.EdgeOffload), m(r.MeasuredEdgeOffload))
	fmt.Fprintf(tw, "requests\t%d\t%d\n", r.Requests, r.MeasuredRequests)
	fmt.Fprintf(tw, "bytes\t%d\t%d\n", r.Bytes, r.MeasuredBytes)
	fmt.Fprintf(tw, "difference\t%+.2f points of edge byte hit ratio\t\n", r.DiffPoints)
	if err := tw.Flush(); err != nil {
		return err
	}
	a := r.Explain["edge_byte_hit_ratio"]
	_, err := fmt.Fprintf(w, "model: %s\ninputs: %s\n", a.Formula, formatInputs(a.Inputs))
	return err
}

// WriteHTML writes a self-contained page: the answers with their formulas
// and, when simulated, the hit ratio against cache size and the catalog
// by tier, as inline SVG (gonum/plot).
func (r *Result) WriteHTML(w io.Writer) error {
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		return err
	}
	var imgs []template.HTML
	add := func(title string, p *plot.Plot) error {
		wt, err := p.WriterTo(6*vg.Inch, 3.5*vg.Inch, "svg")
		if err != nil {
			return fmt.Errorf("plan: chart %q: %w", title, err)
		}
		var buf bytes.Buffer
		if _, err := wt.WriteTo(&buf); err != nil {
			return fmt.Errorf("plan: chart %q: %w", title, err)
		}
		imgs = append(imgs, template.HTML(`<figure><figcaption>`+template.HTMLEscapeString(title)+`</figcaption><img alt="`+
			template.HTMLEscapeString(title)+`" src="data:image/svg+xml;base64,`+base64.StdEncoding.EncodeToString(buf.Bytes())+`"></figure>`))
		return nil
	}
	if s := r.Simulation; s != nil && len(s.Points) > 0 {
		pts := append([]SimPoint(nil), s.Points...)
		sort.Slice(pts, func(i, j int) bool { return pts[i].Fraction < pts[j].Fraction })
		var hit, chunk plotter.XYs
		for _, p := range pts {
			hit = append(hit, plotter.XY{X: math.Log10(p.CacheBytes / 1e9), Y: 100 * p.ByteHitRatio})
			chunk = append(chunk, plotter.XY{X: math.Log10(p.CacheBytes / 1e9), Y: 100 * p.ChunkHitRatio})
		}
		p := plot.New()
		p.Title.Text = "Edge byte hit ratio against edge cache per POP"
		p.X.Label.Text = "log10(edge cache, GB)"
		p.Y.Label.Text = "hit ratio (%)"
		p.Y.Min, p.Y.Max = 0, 100
		p.Add(plotter.NewGrid())
		p.Legend.Top, p.Legend.Left = true, true
		if err := plotutil.AddLinePoints(p, "byte hit (Cache-Status)", hit, "chunk byte hit", chunk); err != nil {
			return err
		}
		if err := add(p.Title.Text, p); err != nil {
			return err
		}
	}
	p := plot.New()
	p.Title.Text = "Catalog bytes by tier"
	p.Y.Label.Text = "TB"
	var vals plotter.Values
	var names []string
	for _, k := range r.TiersKbps {
		vals = append(vals, r.CatalogByTier[fmt.Sprint(k)]/1e12)
		names = append(names, fmt.Sprintf("%d kbps", k))
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(30))
	if err != nil {
		return fmt.Errorf("plan: tier chart: %w", err)
	}
	p.Add(bars)
	p.NominalX(names...)
	if err := add(p.Title.Text, p); err != nil {
		return err
	}
	return htmlPlan.Execute(w, struct {
		Text   string
		Charts []template.HTML
	}{text.String(), imgs})
}

var htmlPlan = template.Must(template.New("plan").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>loadtest plan</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}figure{display:inline-block;margin:1em}</style>
</head><body>
<h1>Capacity plan</h1>
<p>Each answer is followed by its formula and the inputs it used. Hit ratios are simulated (see the simulation table).</p>
<pre>{{.Text}}</pre>
{{range .Charts}}{{.}}
{{end}}</body></html>
`))
