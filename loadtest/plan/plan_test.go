package plan

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/loadtest"
	"github.com/musiccdn/cdn/loadtest/workload"
)

// smallConfig is a plan with every input, on a tiny simulation.
func smallConfig() Config {
	cfg := DefaultConfig()
	cfg.Streams = 10000
	cfg.EdgeCache = config.Size(10e12)
	cfg.ShieldCache = config.Size(50e12)
	cfg.TargetHitRatio = 0.5
	cfg.EdgeThroughputBps = 10e9
	cfg.PlaysPerDay = 12e9
	cfg.SinkEventsPerSec = 50000
	cfg.SimTracks = 500
	cfg.SimSessions = 300
	return cfg
}

// pinnedKeys are the top-level JSON keys of a full plan. Scripts outside
// the repository read them: change them only with those scripts.
var pinnedKeys = []string{
	"avg_duration_s", "catalog_bytes", "catalog_bytes_by_tier", "dedup_store_bytes",
	"edge_byte_hit_ratio", "edge_cache_bytes", "edge_chunk_byte_hit_ratio", "edge_egress_bps",
	"edge_offload", "edge_throughput_bps", "edges_per_pop", "explain", "fetch_overhead", "mix_kbps",
	"origin_egress_bps", "origin_egress_bps_per_1000_streams", "plays_mean_per_s", "plays_partitions",
	"plays_peak_per_s", "plays_per_day", "plays_sinks", "shield_cache_bytes", "shield_egress_bps",
	"shield_hit_ratio", "shields_per_region", "simulation", "skew", "skew_source", "streams",
	"target_byte_hit_ratio", "target_edge_cache_bytes", "tier_mix", "tiers_kbps", "track_bytes", "tracks",
}

func keysOf(t *testing.T, v any) []string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestJSONKeys pins the plan's JSON keys, with every input and with the
// contract's minimal call (catalog only: catalog_bytes, no simulation).
// Mutations caught: renaming a key (edge_byte_hit_ratio to
// edge_hit_ratio_bytes), dropping omitempty (the minimal call grows keys),
// an answer not computed when its inputs are given (a key goes missing).
func TestJSONKeys(t *testing.T) {
	res, err := Plan(context.Background(), smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got := keysOf(t, res); !reflect.DeepEqual(got, pinnedKeys) {
		t.Errorf("keys\n got %v\nwant %v", got, pinnedKeys)
	}
	for _, k := range pinnedKeys {
		if strings.Contains("explain simulation tracks avg_duration_s tiers_kbps tier_mix catalog_bytes_by_tier track_bytes skew skew_source streams plays_per_day target_byte_hit_ratio edge_throughput_bps shield_cache_bytes", k) {
			continue
		}
		if _, ok := res.Explain[k]; !ok && k != "plays_mean_per_s" && k != "edge_cache_bytes" {
			t.Errorf("answer %s has no formula in explain", k)
		}
	}
	cfg := DefaultConfig()
	min, err := Plan(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"avg_duration_s", "catalog_bytes", "catalog_bytes_by_tier", "explain", "mix_kbps", "skew", "skew_source", "tier_mix", "tiers_kbps", "track_bytes", "tracks"}
	if got := keysOf(t, min); !reflect.DeepEqual(got, want) {
		t.Errorf("minimal keys\n got %v\nwant %v", got, want)
	}
	if min.CatalogBytes != 1.743e15 {
		t.Errorf("catalog_bytes = %v, want 1.743e15", min.CatalogBytes)
	}
}

// TestPlanAnswersConsistent: the derived answers follow from the
// simulated ones by their formulas.
func TestPlanAnswersConsistent(t *testing.T) {
	res, err := Plan(context.Background(), smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	egress := 10000 * res.MixKbps * 1000 * *res.FetchOverhead
	if !near(*res.EdgeEgressBps, egress, 1e-12) {
		t.Errorf("edge_egress_bps %v, want %v", *res.EdgeEgressBps, egress)
	}
	if want := egress * (1 - *res.EdgeOffload) * (1 - *res.ShieldHitRatio); !near(*res.OriginEgressBps, want, 1e-12) {
		t.Errorf("origin_egress_bps %v, want %v", *res.OriginEgressBps, want)
	}
	if *res.EdgesPerPOP != NodesNPlus1(egress, 10e9) {
		t.Errorf("edges_per_pop %d", *res.EdgesPerPOP)
	}
	if r := *res.EdgeByteHitRatio; !(r > 0 && r < 1) {
		t.Errorf("edge_byte_hit_ratio %v not in (0, 1)", r)
	}
	if res.TargetEdgeCacheBytes == nil && len(res.Notes) == 0 {
		t.Errorf("target neither met nor explained")
	}
	var html, text bytes.Buffer
	if err := res.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(html.String(), "data:image/svg+xml;base64,"); n != 2 {
		t.Errorf("HTML has %d charts, want 2", n)
	}
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "edges_per_pop") || !strings.Contains(text.String(), "= ceil(edge_egress_bps") {
		t.Errorf("text lacks an answer or its formula: %v\n%s", err, text.String())
	}
}

// runReport is a load-tool report as Run writes it, with params.
func runReport(t *testing.T, pop *loadtest.POPParams) []byte {
	t.Helper()
	cfg := loadtest.DefaultConfig()
	cfg.Workload.Tracks = 300
	cfg.Workload.SessionRate = 2
	cfg.Duration = 20 * time.Second
	cfg.POP = pop
	p := cfg.Params()
	chunk := 0.4
	res := loadtest.Result{Requests: 100, Bytes: 1e8, EdgeByteHitRatio: 0.25, EdgeHitRatio: 0.3, EdgeChunkHitRatio: &chunk, Params: &p}
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testPOP() *loadtest.POPParams {
	return &loadtest.POPParams{Edges: 3, EdgeCacheBytes: 32 << 20, EdgeWindowPercent: 25, HotCacheBytes: 8 << 20, HotWindowPercent: 25,
		HotMinReads: 4, HotWindowS: 10, ChunkSize: 256 << 10, PrefetchEnabled: true, PrefetchTracks: 3, PrefetchSeconds: 10,
		PrefetchDedupS: 300, SyntheticRights: true}
}

// TestLikeRunParsesReport: a report written by loadtest.Result.WriteJSON
// round-trips its params into the replay, and LikeRun returns the run's
// measurement beside a prediction.
// Mutations caught: a params field not carried (the workload or POP
// differs), the measured ratio read from the wrong key, a report without
// params or pop accepted.
func TestLikeRunParsesReport(t *testing.T) {
	b := runReport(t, testPOP())
	rep, err := ParseRunReport(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	w, err := rep.Params.Workload.Config()
	if err != nil {
		t.Fatal(err)
	}
	want := workload.DefaultConfig()
	want.Tracks, want.SessionRate = 300, 2
	if !reflect.DeepEqual(w, want) {
		t.Errorf("workload round trip\n got %+v\nwant %+v", w, want)
	}
	if !reflect.DeepEqual(rep.Params.POP, testPOP()) || rep.Params.Compression != 60 || rep.Params.PlannedDurationS != 20 {
		t.Errorf("params %+v pop %+v", rep.Params, rep.Params.POP)
	}
	rc := RunConfigOf(rep.Params)
	if rc.POP.Edges != 3 || rc.POP.HotWindow != 10*time.Second || rc.POP.PrefetchDedup != 5*time.Minute || rc.Duration != 20*time.Second || rc.POP.Allowed == nil {
		t.Errorf("replay config %+v", rc.POP)
	}

	path := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := LikeRun(path, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res.MeasuredEdgeByteHitRatio != 0.25 || res.MeasuredEdgeHitRatio != 0.3 || *res.MeasuredEdgeChunkHitRatio != 0.4 {
		t.Errorf("measured %+v", res)
	}
	if res.Requests == 0 || !(res.EdgeByteHitRatio >= 0 && res.EdgeByteHitRatio <= 1) {
		t.Errorf("prediction %+v", res)
	}
	if keys := keysOf(t, res); !reflect.DeepEqual(keys, []string{"bytes", "edge_byte_hit_ratio", "edge_byte_hit_ratio_diff_points", "edge_byte_hit_ratio_max", "edge_byte_hit_ratio_min", "edge_chunk_byte_hit_ratio",
		"edge_chunk_hit_ratio_max", "edge_chunk_hit_ratio_min", "edge_hit_ratio", "edge_offload", "elapsed_s", "explain", "measured_bytes", "measured_edge_byte_hit_ratio", "measured_edge_chunk_hit_ratio",
		"measured_edge_hit_ratio", "measured_edge_offload", "measured_errors", "measured_requests", "replays", "requests", "run_file"}) {
		t.Errorf("like-run keys %v", keys)
	}

	for name, doc := range map[string]string{
		"no params": `{"requests": 1, "edge_byte_hit_ratio": 0.5}`,
		"no pop":    string(runReport(t, nil)),
		"not json":  `edge_byte_hit_ratio: 0.5`,
		"bad pop":   strings.Replace(string(b), `"edges": 3`, `"edges": 0`, 1),
	} {
		if _, err := ParseRunReport(strings.NewReader(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParsers(t *testing.T) {
	rates := map[string]float64{"9.4Gbps": 9.4e9, "800 Mbps": 8e8, "1e9": 1e9, "25kbps": 25e3, "2Tbps": 2e12}
	for in, want := range rates {
		if got, err := ParseBitRate(in); err != nil || !near(got, want, 1e-12) {
			t.Errorf("ParseBitRate(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "-1Gbps", "NaNbps", "1GB"} {
		if _, err := ParseBitRate(in); err == nil {
			t.Errorf("ParseBitRate(%q) accepted", in)
		}
	}
	wrk := "Running 20s test\n  2 threads and 64 connections\nRequests/sec:  18000.00\nTransfer/sec:      1.10GB\n"
	if got, err := ParseWrk([]byte(wrk)); err != nil || !near(got, 1.10*(1<<30)*8, 1e-12) {
		t.Errorf("ParseWrk = %v, %v", got, err)
	}
	if _, err := ParseWrk([]byte("Requests/sec: 1\n")); err == nil {
		t.Errorf("ParseWrk without Transfer/sec accepted")
	}
	counts, err := ParsePopularity(strings.NewReader("track,plays\nt1,100\nt2,50\nt3,33\n"))
	if err != nil || !reflect.DeepEqual(counts, []float64{100, 50, 33}) {
		t.Errorf("ParsePopularity = %v, %v", counts, err)
	}
	if _, err := ParsePopularity(strings.NewReader("t1,100\nt2,many\n")); err == nil {
		t.Errorf("bad count accepted")
	}
}

func FuzzParseRunReport(f *testing.F) {
	f.Add([]byte(`{"params": {"workload": {"tracks": 10}, "compression": 60, "planned_duration_s": 1, "pop": {"edges": 1}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := ParseRunReport(bytes.NewReader(b))
		if err == nil && (rep.Params == nil || rep.Params.POP == nil || rep.Params.POP.Edges < 1) {
			t.Fatalf("accepted an unusable report: %s", b)
		}
	})
}

func FuzzParseBitRate(f *testing.F) {
	for _, s := range []string{"9.4Gbps", "1e9", "", "-1bps", "Inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseBitRate(s)
		if err == nil && !(v >= 0) {
			t.Fatalf("ParseBitRate(%q) = %v", s, v)
		}
		if v, err := ParseWrk([]byte(s)); err == nil && !(v > 0) {
			t.Fatalf("ParseWrk(%q) = %v", s, v)
		}
	})
}

func FuzzParsePopularity(f *testing.F) {
	f.Add("track,plays\nt1,100\nt2,50\n")
	f.Add("1\n2\n\"x")
	f.Fuzz(func(t *testing.T, s string) {
		counts, err := ParsePopularity(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, c := range counts {
			if !(c >= 0) {
				t.Fatalf("negative or NaN count %v", c)
			}
		}
		_ = FitZipf(counts)
	})
}
