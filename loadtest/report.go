package loadtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Result is what a run measured. Ratios derived from /metrics are null
// when a tier's nodes could not be scraped.
type Result struct {
	Requests       int64   `json:"requests"` // range requests to edges
	Errors         int64   `json:"errors"`   // of every kind, manifests and plays included
	VerifyFailures int64   `json:"verify_failures"`
	Bytes          int64   `json:"bytes"` // body bytes received from edges
	DurationS      float64 `json:"duration_s"`
	RPS            float64 `json:"rps"`
	Mbps           float64 `json:"mbps"`     // megabits per second
	MBPerS         float64 `json:"mb_per_s"` // megabytes per second
	TTFBP50MS      float64 `json:"ttfb_p50_ms"`
	TTFBP99MS      float64 `json:"ttfb_p99_ms"`
	TTFBP999MS     float64 `json:"ttfb_p999_ms"`
	TTFBMaxMS      float64 `json:"ttfb_max_ms"`
	// AllTTFB* are over every range request, a failed one at its time to
	// failure; TTFB* above are over the successful ones only (a run in
	// which requests fail fast can look faster there than it was).
	AllTTFBP50MS  float64 `json:"all_ttfb_p50_ms"`
	AllTTFBP99MS  float64 `json:"all_ttfb_p99_ms"`
	AllTTFBP999MS float64 `json:"all_ttfb_p999_ms"`
	// TrackStarts are manifest requests; TrackStartErrors those that
	// failed (a rights denial is not a failure).
	TrackStarts      int64 `json:"track_starts"`
	TrackStartErrors int64 `json:"track_start_errors"`
	// Failovers are range requests retried at another edge after an
	// error (Config.Failover); the retry's outcome is what is counted.
	Failovers   int64   `json:"failovers"`
	TotalP50MS  float64 `json:"total_p50_ms"`
	TotalP99MS  float64 `json:"total_p99_ms"`
	TotalP999MS float64 `json:"total_p999_ms"`
	// EdgeHitRatio is the share of range requests whose Cache-Status says
	// the edge answered from its cache.
	EdgeHitRatio float64 `json:"edge_hit_ratio"`
	// EdgeByteHitRatio is the share of received bytes in responses whose
	// Cache-Status says hit.
	EdgeByteHitRatio float64 `json:"edge_byte_hit_ratio"`
	// EdgeOffload is 1 - (bytes the shields served)/(bytes the players
	// received), from /metrics: the edge tier's byte saving as the shields
	// see it. It counts whole-chunk fills and prefetches of next tracks,
	// so on a cold cache it can be below the byte hit ratio, even negative.
	EdgeOffload       *float64 `json:"edge_offload"`
	EdgeChunkHitRatio *float64 `json:"edge_chunk_hit_ratio"` // edge_cache_hits/(hits+misses)
	ShieldHitRatio    *float64 `json:"shield_hit_ratio"`     // shield_cache_hits/(hits+misses), chunks
	OriginRequests    *int64   `json:"origin_requests"`      // origin_media_requests_total delta
	ShieldBytes       int64    `json:"shield_bytes"`
	EdgeBytesServed   int64    `json:"edge_bytes_served"`
	PlaysSent         int64    `json:"plays_sent"`
	// PlaysUnsupported is set when the origin answered 404 to POST
	// /v1/plays: no play pipeline is mounted, so no plays were sent.
	PlaysUnsupported bool             `json:"plays_unsupported"`
	Sessions         int64            `json:"sessions"`
	ManifestRequests int64            `json:"manifest_requests"`
	ManifestP99MS    float64          `json:"manifest_p99_ms"`
	Denied           int64            `json:"denied"` // manifests refused (403) by rights
	ErrorsByKind     map[string]int64 `json:"errors_by_kind"`
	VerifyByKind     map[string]int64 `json:"verify_failures_by_kind"`
	ByTier           []Breakdown      `json:"by_tier"`
	ByOutcome        []Breakdown      `json:"by_outcome"`
	Timeline         []Point          `json:"timeline"`
	MetricsNote      string           `json:"metrics_note,omitempty"`
	Seed             uint64           `json:"seed"`
	Catalog          int              `json:"catalog_tracks"`
	Skew             float64          `json:"skew"`
	// Params records the workload, catalog and cache parameters of the
	// run, for "loadtest plan --like-run".
	Params *RunParams `json:"params"`
}

// Breakdown is the latency and volume of one slice of the requests.
type Breakdown struct {
	Name        string  `json:"name"`
	Requests    int64   `json:"requests"`
	Bytes       int64   `json:"bytes"`
	TTFBP50MS   float64 `json:"ttfb_p50_ms"`
	TTFBP99MS   float64 `json:"ttfb_p99_ms"`
	TTFBP999MS  float64 `json:"ttfb_p999_ms"`
	TotalP50MS  float64 `json:"total_p50_ms"`
	TotalP99MS  float64 `json:"total_p99_ms"`
	TotalP999MS float64 `json:"total_p999_ms"`
}

// Point is one second of the run; HitRatio is -1 when no response carried
// Cache-Status.
type Point struct {
	T          float64 `json:"t"`
	Requests   int64   `json:"requests"`
	Bytes      int64   `json:"bytes"`
	Errors     int64   `json:"errors"`
	HitRatio   float64 `json:"hit_ratio"`
	TTFBP50MS  float64 `json:"ttfb_p50_ms"`
	TTFBP99MS  float64 `json:"ttfb_p99_ms"`
	TTFBP999MS float64 `json:"ttfb_p999_ms"`
	// AllTTFBP99MS counts failed requests at their time to failure.
	AllTTFBP99MS float64 `json:"all_ttfb_p99_ms"`
	// ErrorRate is errors / requests in this second.
	ErrorRate float64 `json:"error_rate"`
}

// Check returns an error when the run exceeded the allowed error or
// verify-failure rates (fractions of requests; 0 allows none).
func (res *Result) Check(maxErrorRate, maxVerifyRate float64) error {
	n := float64(max(res.Requests, 1))
	if float64(res.Errors) > maxErrorRate*n {
		return fmt.Errorf("loadtest: %d errors in %d requests exceed the allowed rate %g", res.Errors, res.Requests, maxErrorRate)
	}
	if float64(res.VerifyFailures) > maxVerifyRate*n {
		return fmt.Errorf("loadtest: %d verify failures in %d requests exceed the allowed rate %g", res.VerifyFailures, res.Requests, maxVerifyRate)
	}
	if res.Requests == 0 {
		return fmt.Errorf("loadtest: no requests completed")
	}
	return nil
}

// WriteText writes the end-of-run table.
func (res *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	f := func(format string, a ...any) { fmt.Fprintf(tw, format, a...) }
	f("duration\t%.1f s\tsessions\t%d\n", res.DurationS, res.Sessions)
	f("requests\t%d\trps\t%.1f\n", res.Requests, res.RPS)
	f("bytes\t%d\tthroughput\t%.2f MB/s (%.1f Mbit/s)\n", res.Bytes, res.MBPerS, res.Mbps)
	f("errors\t%d\tverify failures\t%d\n", res.Errors, res.VerifyFailures)
	f("ttfb p50/p99/p99.9/max (ok)\t%.2f / %.2f / %.2f / %.2f ms\t\t\n", res.TTFBP50MS, res.TTFBP99MS, res.TTFBP999MS, res.TTFBMaxMS)
	f("ttfb p50/p99/p99.9 (all)\t%.2f / %.2f / %.2f ms\tfailed at time to failure\t\n", res.AllTTFBP50MS, res.AllTTFBP99MS, res.AllTTFBP999MS)
	f("track starts\t%d\ttrack start errors\t%d\n", res.TrackStarts, res.TrackStartErrors)
	if res.Failovers > 0 {
		f("failovers\t%d\t\t\n", res.Failovers)
	}
	f("total p50/p99/p99.9\t%.2f / %.2f / %.2f ms\t\t\n", res.TotalP50MS, res.TotalP99MS, res.TotalP999MS)
	f("edge hit ratio (requests)\t%s\tedge byte hit ratio\t%s\n", pct(res.EdgeHitRatio), pct(res.EdgeByteHitRatio))
	f("edge chunk hit ratio\t%s\tedge offload (metrics)\t%s\n", pctp(res.EdgeChunkHitRatio), pctp(res.EdgeOffload))
	f("shield hit ratio (chunks)\t%s\t\t\n", pctp(res.ShieldHitRatio))
	orq := "n/a"
	if res.OriginRequests != nil {
		orq = fmt.Sprint(*res.OriginRequests)
	}
	f("origin requests\t%s\tplays sent\t%d%s\n", orq, res.PlaysSent, map[bool]string{true: " (origin has no /v1/plays)"}[res.PlaysUnsupported])
	f("manifests\t%d (denied %d)\tmanifest p99\t%.2f ms\n", res.ManifestRequests, res.Denied, res.ManifestP99MS)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, part := range []struct {
		title string
		rows  []Breakdown
	}{{"by tier (kbps)", res.ByTier}, {"by cache outcome", res.ByOutcome}} {
		fmt.Fprintf(tw, "\n%s\trequests\tMB\tttfb p50\tp99\tp99.9\ttotal p50\tp99\tp99.9\n", part.title)
		for _, b := range part.rows {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", b.Name, b.Requests, float64(b.Bytes)/1e6,
				b.TTFBP50MS, b.TTFBP99MS, b.TTFBP999MS, b.TotalP50MS, b.TotalP99MS, b.TotalP999MS)
		}
	}
	if len(res.ErrorsByKind)+len(res.VerifyByKind) > 0 {
		fmt.Fprintf(tw, "\nproblem\tcount\n")
		for _, m := range []struct {
			prefix string
			m      map[string]int64
		}{{"error ", res.ErrorsByKind}, {"verify ", res.VerifyByKind}} {
			keys := make([]string, 0, len(m.m))
			for k := range m.m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "%s%s\t%d\n", m.prefix, k, m.m[k])
			}
		}
	}
	if res.MetricsNote != "" {
		fmt.Fprintf(tw, "\nmetrics: %s\n", res.MetricsNote)
	}
	return tw.Flush()
}

func pct(r float64) string { return fmt.Sprintf("%.2f%%", 100*r) }

func pctp(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return pct(*r)
}

// WriteJSON writes the result as indented JSON.
func (res *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// WriteFile writes the result to path with write, creating or truncating it.
func WriteFile(path string, write func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("loadtest: write %s: %w", path, err)
	}
	return nil
}

// Chart titles in the HTML report, in order.
var ChartTitles = []string{
	"Time to first byte over time",
	"Throughput over time",
	"Requests per second over time",
	"Edge hit ratio over time",
	"Tier mix",
}

// WriteHTML writes a self-contained page: the summary, the tables, and
// the charts as inline SVG images (data: URLs), so it opens offline.
func (res *Result) WriteHTML(w io.Writer) error {
	charts, err := res.charts("svg")
	if err != nil {
		return err
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		return err
	}
	type chart struct {
		Title string
		Img   template.HTML
	}
	data := struct {
		Generated string
		Text      string
		Charts    []chart
	}{Generated: time.Now().UTC().Format(time.RFC3339), Text: text.String()}
	for i, svg := range charts {
		// Built by hand: html/template would escape the data URL's "+",
		// which browsers accept but readers of the file trip on. Base64
		// and an escaped title cannot break out of the attribute.
		img := `<img alt="` + template.HTMLEscapeString(ChartTitles[i]) +
			`" src="data:image/svg+xml;base64,` + base64.StdEncoding.EncodeToString(svg) + `">`
		data.Charts = append(data.Charts, chart{Title: ChartTitles[i], Img: template.HTML(img)})
	}
	return htmlReport.Execute(w, data)
}

var htmlReport = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>loadtest report</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em}figure{display:inline-block;margin:1em}</style>
</head><body>
<h1>loadtest report</h1>
<p>Generated {{.Generated}}. Latencies are measured from when each request was due (coordinated omission corrected).</p>
<pre>{{.Text}}</pre>
{{range .Charts}}<figure><figcaption>{{.Title}}</figcaption>{{.Img}}</figure>
{{end}}</body></html>
`))

// charts draws ChartTitles, in order, in format ("svg", "png").
func (res *Result) charts(format string) ([][]byte, error) {
	var lat [3]plotter.XYs
	var mbs, rps, hit plotter.XYs
	for _, p := range res.Timeline {
		lat[0] = append(lat[0], plotter.XY{X: p.T, Y: p.TTFBP50MS})
		lat[1] = append(lat[1], plotter.XY{X: p.T, Y: p.TTFBP99MS})
		lat[2] = append(lat[2], plotter.XY{X: p.T, Y: p.TTFBP999MS})
		mbs = append(mbs, plotter.XY{X: p.T, Y: float64(p.Bytes) / 1e6})
		rps = append(rps, plotter.XY{X: p.T, Y: float64(p.Requests)})
		if p.HitRatio >= 0 {
			hit = append(hit, plotter.XY{X: p.T, Y: 100 * p.HitRatio})
		}
	}
	var out [][]byte
	line := func(title, ylabel string, series ...any) error {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "elapsed (s)"
		p.Y.Label.Text = ylabel
		p.Add(plotter.NewGrid())
		p.Y.Min = 0
		p.Legend.Top, p.Legend.Left = true, true
		if err := plotutil.AddLines(p, series...); err != nil {
			return fmt.Errorf("loadtest: chart %q: %w", title, err)
		}
		b, err := render(p, format)
		out = append(out, b)
		return err
	}
	nonEmpty := func(xy plotter.XYs) plotter.XYs {
		if len(xy) == 0 {
			return plotter.XYs{{X: 0, Y: 0}}
		}
		return xy
	}
	if err := line(ChartTitles[0], "TTFB (ms)", "p50", nonEmpty(lat[0]), "p99", nonEmpty(lat[1]), "p99.9", nonEmpty(lat[2])); err != nil {
		return nil, err
	}
	if err := line(ChartTitles[1], "MB/s", "received", nonEmpty(mbs)); err != nil {
		return nil, err
	}
	if err := line(ChartTitles[2], "requests/s", "completed", nonEmpty(rps)); err != nil {
		return nil, err
	}
	if err := line(ChartTitles[3], "hit ratio (%)", "Cache-Status hit", nonEmpty(hit)); err != nil {
		return nil, err
	}
	p := plot.New()
	p.Title.Text = ChartTitles[4]
	p.Y.Label.Text = "share of bytes (%)"
	vals := plotter.Values{}
	names := []string{}
	for _, b := range res.ByTier {
		vals = append(vals, 100*float64(b.Bytes)/float64(max(res.Bytes, 1)))
		names = append(names, b.Name+" kbps")
	}
	if len(vals) == 0 {
		vals, names = plotter.Values{0}, []string{"none"}
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(30))
	if err != nil {
		return nil, fmt.Errorf("loadtest: tier chart: %w", err)
	}
	p.Add(bars)
	p.NominalX(names...)
	b, err := render(p, format)
	if err != nil {
		return nil, err
	}
	return append(out, b), nil
}

func render(p *plot.Plot, format string) ([]byte, error) {
	wt, err := p.WriterTo(6*vg.Inch, 3.5*vg.Inch, format)
	if err != nil {
		return nil, fmt.Errorf("loadtest: draw chart: %w", err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("loadtest: draw chart: %w", err)
	}
	return buf.Bytes(), nil
}
