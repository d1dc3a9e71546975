package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/musiccdn/cdn/loadtest/cachesim"
	"github.com/musiccdn/cdn/loadtest/runparams"
	"github.com/musiccdn/cdn/origin/media"
	"github.com/musiccdn/cdn/origin/rights"
)

// RunReport is the part of a load-tool JSON report LikeRun reads: the
// run's parameters and what it measured.
type RunReport struct {
	Requests          int64          `json:"requests"`
	Bytes             int64          `json:"bytes"`
	DurationS         float64        `json:"duration_s"`
	EdgeHitRatio      float64        `json:"edge_hit_ratio"`
	EdgeByteHitRatio  float64        `json:"edge_byte_hit_ratio"`
	EdgeChunkHitRatio *float64       `json:"edge_chunk_hit_ratio"`
	EdgeOffload       *float64       `json:"edge_offload"`
	Errors            int64          `json:"errors"`
	Params            *runparams.Run `json:"params"`
}

// ParseRunReport decodes a report and checks it carries what LikeRun
// needs.
func ParseRunReport(r io.Reader) (*RunReport, error) {
	var rep RunReport
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("not a load-tool JSON report: %w", err)
	}
	switch {
	case rep.Params == nil:
		return nil, errors.New("the report has no params (written by a load tool older than plan --like-run)")
	case rep.Params.POP == nil:
		return nil, errors.New("the report's params.pop is null: the run did not know its POP (use --spawn, or --pop-config with --addr-file)")
	case !(rep.Params.Compression > 0) || !(rep.Params.PlannedDurationS > 0) || rep.Params.PlannedDurationS > 7*24*3600:
		return nil, fmt.Errorf("params: compression %v and planned_duration_s %v must be > 0 (and at most a week)", rep.Params.Compression, rep.Params.PlannedDurationS)
	case rep.Params.Workload.Tracks > 10_000_000:
		return nil, fmt.Errorf("params.workload.tracks %d: larger than a load test's catalog", rep.Params.Workload.Tracks)
	case rep.Params.Workload.SessionRate*rep.Params.PlannedDurationS > 10_000_000:
		// The replay holds every session: bound its memory.
		return nil, fmt.Errorf("params: %v sessions/s for %v s is more than a load test's 10M sessions", rep.Params.Workload.SessionRate, rep.Params.PlannedDurationS)
	}
	if err := rep.Params.POP.Validate(); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if _, err := rep.Params.Workload.Config(); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	return &rep, nil
}

// LikeRunResult is the prediction for a run next to its measurement.
type LikeRunResult struct {
	RunFile string `json:"run_file"`
	// Predicted, with the same definitions as the load tool's report:
	// the mean of Replays replays, and their range.
	Replays             int     `json:"replays"`
	EdgeByteHitRatio    float64 `json:"edge_byte_hit_ratio"`
	EdgeByteHitRatioMin float64 `json:"edge_byte_hit_ratio_min"`
	EdgeByteHitRatioMax float64 `json:"edge_byte_hit_ratio_max"`
	EdgeHitRatio        float64 `json:"edge_hit_ratio"`
	// EdgeChunkHitRatioMin and Max bound the edges' main stores' chunk
	// hit ratio, as the run's edge_chunk_hit_ratio counts it from metrics
	// (owners' reads, peer fills included): it depends on whether chunks
	// a request warms ahead of itself are filled before they are read,
	// which the model does not time. EdgeChunkByteHitRatio is the chunk
	// bytes the receiving edge held before the request.
	EdgeChunkHitRatioMin  float64 `json:"edge_chunk_hit_ratio_min"`
	EdgeChunkHitRatioMax  float64 `json:"edge_chunk_hit_ratio_max"`
	EdgeChunkByteHitRatio float64 `json:"edge_chunk_byte_hit_ratio"`
	EdgeOffload           float64 `json:"edge_offload"`
	Requests              int64   `json:"requests"`
	Bytes                 int64   `json:"bytes"`
	// Measured by the run (its report's keys, prefixed).
	MeasuredEdgeByteHitRatio  float64  `json:"measured_edge_byte_hit_ratio"`
	MeasuredEdgeHitRatio      float64  `json:"measured_edge_hit_ratio"`
	MeasuredEdgeChunkHitRatio *float64 `json:"measured_edge_chunk_hit_ratio"`
	MeasuredEdgeOffload       *float64 `json:"measured_edge_offload"`
	MeasuredRequests          int64    `json:"measured_requests"`
	MeasuredBytes             int64    `json:"measured_bytes"`
	MeasuredErrors            int64    `json:"measured_errors"`
	// DiffPoints is (predicted - measured) edge byte hit ratio, in points.
	DiffPoints float64           `json:"edge_byte_hit_ratio_diff_points"`
	Explain    map[string]Answer `json:"explain"`
	ElapsedS   float64           `json:"elapsed_s"`
}

// LikeRun replays the run a report describes through the model of its
// POP (cachesim.ReplayRun: same sessions, same edges, ownership, hot
// caches, prefetch and rights) and returns the prediction next to what
// the run measured.
//
// Ristretto samples its evictions at random, so replays of the same run
// differ by about a point; LikeRun replays it replays times (at least 1)
// and reports the mean, with the range in EdgeByteHitRatioMin and Max.
func LikeRun(path string, replays int) (*LikeRunResult, error) {
	rep, err := readFile("--like-run", path, ParseRunReport)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cfg := RunConfigOf(rep.Params)
	var sum cachesim.POPStats
	lo, hi := 1.0, 0.0
	replays = max(replays, 1)
	for range replays {
		st, err := cachesim.ReplayRun(cfg)
		if err != nil {
			return nil, fmt.Errorf("plan: --like-run %s: %w", path, err)
		}
		lo, hi = min(lo, st.ByteHitRatio()), max(hi, st.ByteHitRatio())
		sum = sum.Add(st)
	}
	st := sum
	p := rep.Params.POP
	cmin, cmax := st.OwnerHitRatio()
	res := &LikeRunResult{
		EdgeChunkHitRatioMin: cmin, EdgeChunkHitRatioMax: cmax,
		RunFile:          path,
		Replays:          replays,
		EdgeByteHitRatio: st.ByteHitRatio(), EdgeByteHitRatioMin: lo, EdgeByteHitRatioMax: hi, EdgeHitRatio: st.HitRatio(),
		EdgeChunkByteHitRatio: st.ChunkByteHitRatio(), EdgeOffload: st.Offload(),
		Requests: st.Requests / int64(replays), Bytes: st.Bytes / int64(replays),
		MeasuredEdgeByteHitRatio: rep.EdgeByteHitRatio, MeasuredEdgeHitRatio: rep.EdgeHitRatio,
		MeasuredEdgeChunkHitRatio: rep.EdgeChunkHitRatio, MeasuredEdgeOffload: rep.EdgeOffload,
		MeasuredRequests: rep.Requests, MeasuredBytes: rep.Bytes, MeasuredErrors: rep.Errors,
		DiffPoints: 100 * (st.ByteHitRatio() - rep.EdgeByteHitRatio),
		Explain: map[string]Answer{"edge_byte_hit_ratio": {
			Formula: "simulated: the run's sessions (same workload and seed) on the wall clock, each range request at the edge Pick mod edges chose, replayed through that POP's edges (rendezvous owners' memories, hot caches behind rate admission, prefetch of hinted next tracks, synthetic rights); bytes of requests whose every chunk the receiving edge held / bytes requested",
			Inputs: map[string]float64{
				"edges": float64(p.Edges), "edge_cache_bytes": float64(p.EdgeCacheBytes), "hot_cache_bytes": float64(p.HotCacheBytes),
				"chunk_size": float64(p.ChunkSize), "tracks": float64(rep.Params.Workload.Tracks), "skew": rep.Params.Workload.Skew,
				"session_rate": rep.Params.Workload.SessionRate, "compression": rep.Params.Compression, "duration_s": rep.Params.PlannedDurationS,
			},
		}},
		ElapsedS: time.Since(start).Seconds(),
	}
	return res, nil
}

// RunConfigOf is the replay of a run with parameters p (p.POP not nil).
func RunConfigOf(p *runparams.Run) cachesim.RunConfig {
	w, _ := p.Workload.Config()
	pp := p.POP
	pc := cachesim.POPConfig{
		Edges: pp.Edges, EdgeBytes: pp.EdgeCacheBytes, EdgeWindowPercent: pp.EdgeWindowPercent,
		HotBytes: pp.HotCacheBytes, HotWindowPercent: pp.HotWindowPercent, HotMinReads: pp.HotMinReads,
		HotWindow: time.Duration(pp.HotWindowS * float64(time.Second)), ChunkSize: pp.ChunkSize,
		Prefetch: pp.PrefetchEnabled && pp.PrefetchTracks > 0, PrefetchTracks: pp.PrefetchTracks, PrefetchSeconds: pp.PrefetchSeconds,
		PrefetchDedup: time.Duration(pp.PrefetchDedupS * float64(time.Second)),
	}
	if pp.SyntheticRights {
		cat := media.NewSynthetic(w.Tracks, w.Seed)
		rs := rights.Synthetic{Seed: w.Seed}
		pc.Allowed = func(track int, country string) bool { return rs.Allowed(cat.ID(track), country, time.Time{}) }
	}
	return cachesim.RunConfig{Workload: w, Compression: p.Compression,
		Duration: time.Duration(p.PlannedDurationS * float64(time.Second)), POP: pc}
}
