package cachesim

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/musiccdn/cdn/cache"

	"github.com/musiccdn/cdn/loadtest/workload"
)

// StudyConfig is the grid of a cache policy study.
type StudyConfig struct {
	Stream StreamConfig
	// Skews are the Zipf exponents to try. Default {0.8, 1.0, 1.2, 1.4}.
	Skews []float64
	// Fractions are cache sizes as fractions of the catalog's bytes.
	// Default {0.001, 0.01, 0.05, 0.10}.
	Fractions []float64
	// Warmup is the fraction of the stream that fills the caches before
	// counting starts. Default 0.2.
	Warmup float64
	// WindowPercent is the edge memory's LRU window share (see
	// cache.Memory). Default cache.DefaultWindowPercent.
	WindowPercent int
}

// DefaultStudyConfig is the study the docs report: a 20 000-track catalog
// (so that 2 M chunk requests revisit it often enough for the cache sizes
// to matter) with the run's default workload.
func DefaultStudyConfig() StudyConfig {
	w := DefaultWorkloadForStudy()
	return StudyConfig{
		Stream:    StreamConfig{Workload: w, Compression: 60, ChunkSize: 256 << 10, Accesses: 2_000_000},
		Skews:     []float64{0.8, 1.0, 1.2, 1.4},
		Fractions: []float64{0.001, 0.01, 0.05, 0.10},
		Warmup:    0.2,
	}
}

// Row is one policy at one skew and cache size.
type Row struct {
	Skew, Fraction float64
	CacheBytes     int64
	Policy         string
	Stats          Stats
}

func windowPercent(cfg StudyConfig) int {
	if cfg.WindowPercent == 0 {
		return cache.DefaultWindowPercent
	}
	return cfg.WindowPercent
}

// Study replays the stream of every skew through every policy at every
// cache size. progress, if not nil, is called after each row.
func Study(cfg StudyConfig, progress func(Row)) ([]Row, error) {
	catBytes := CatalogBytes(cfg.Stream.Workload.Tracks, cfg.Stream.Workload.Seed)
	var rows []Row
	for _, s := range cfg.Skews {
		sc := cfg.Stream
		sc.Workload.Skew = s
		stream, err := Stream(sc)
		if err != nil {
			return nil, err
		}
		warm := int(cfg.Warmup * float64(len(stream)))
		for _, f := range cfg.Fractions {
			capBytes := int64(f * float64(catBytes))
			r, err := NewRistretto(capBytes, sc.ChunkSize)
			if err != nil {
				return nil, err
			}
			e, err := NewEdge(capBytes, sc.ChunkSize, windowPercent(cfg))
			if err != nil {
				return nil, err
			}
			for _, p := range []Policy{e, r, NewLRU(capBytes), NewStatic(capBytes, stream), NewBelady(capBytes, stream)} {
				row := Row{Skew: s, Fraction: f, CacheBytes: capBytes, Policy: p.Name(), Stats: Replay(p, stream, warm)}
				rows = append(rows, row)
				if progress != nil {
					progress(row)
				}
			}
			r.Close()
			e.Close()
		}
	}
	return rows, nil
}

// WriteTable writes rows as a table: one line per (skew, size), the
// object and byte hit ratio of each policy.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "skew\tcache\tGB\tedge obj\tbyte\tristretto obj\tbyte\tlru obj\tbyte\tstatic obj\tbyte\tbelady obj\tbyte\t\n")
	for i := 0; i < len(rows); {
		r := rows[i]
		fmt.Fprintf(tw, "%.1f\t%.1f%%\t%.2f\t", r.Skew, 100*r.Fraction, float64(r.CacheBytes)/1e9)
		for _, name := range []string{"edge", "ristretto", "lru", "static", "belady"} {
			found := false
			for j := i; j < len(rows) && rows[j].Skew == r.Skew && rows[j].Fraction == r.Fraction; j++ {
				if rows[j].Policy == name {
					fmt.Fprintf(tw, "%.2f%%\t%.2f%%\t", 100*rows[j].Stats.HitRatio(), 100*rows[j].Stats.ByteHitRatio())
					found = true
				}
			}
			if !found {
				fmt.Fprintf(tw, "-\t-\t")
			}
		}
		fmt.Fprintln(tw)
		for i < len(rows) && rows[i].Skew == r.Skew && rows[i].Fraction == r.Fraction {
			i++
		}
	}
	return tw.Flush()
}

// DefaultWorkloadForStudy is the run's default workload on a 20 000-track
// catalog.
func DefaultWorkloadForStudy() workload.Config {
	w := workload.DefaultConfig()
	w.Tracks = 20000
	return w
}
