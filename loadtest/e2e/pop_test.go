package e2e

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/musiccdn/cdn/loadtest"
	"github.com/musiccdn/cdn/loadtest/workload"
	"github.com/musiccdn/cdn/pop"
)

// TestAgainstPOP runs the tool end to end against a real POP in this
// process (origin, 2 shields, 2 edges on loopback): every byte verified,
// the metrics of every node scraped.
func TestAgainstPOP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole POP")
	}
	ctx := context.Background()
	pc := pop.DefaultConfig()
	pc.Edges, pc.Shields, pc.Catalog, pc.Seed = 2, 2, "synthetic:500", 5
	pc.EdgeCache, pc.ShieldCache = 32<<20, 64<<20
	p, err := pop.Start(ctx, pc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	a := p.Addrs()

	cfg := loadtest.DefaultConfig()
	cfg.Workload.Tracks, cfg.Workload.Seed = 500, 5
	cfg.Workload.SessionRate = 2
	cfg.Workload.Classes = []workload.BandwidthClass{{Name: "3g", Weight: 1, MaxKbps: 64}}
	cfg.Duration = 3 * time.Second
	cfg.Compression = 600
	// The POP's addresses are the load tool's targets (one type).
	res, err := loadtest.Run(ctx, cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 50 || res.Errors != 0 || res.VerifyFailures != 0 {
		t.Fatalf("requests %d, errors %v, verify failures %v: want many, none, none", res.Requests, res.ErrorsByKind, res.VerifyByKind)
	}
	// Every play went through the session and ticket checks: any
	// refusal would be an error above.
	if res.PlaysSent == 0 || res.PlaysUnsupported {
		t.Errorf("plays sent %d (unsupported %v), want some accepted", res.PlaysSent, res.PlaysUnsupported)
	}
	if res.MetricsNote != "" || res.EdgeChunkHitRatio == nil || res.ShieldHitRatio == nil || res.OriginRequests == nil || res.EdgeOffload == nil {
		t.Errorf("metrics not scraped from every node: %q", res.MetricsNote)
	}
	if len(res.ByOutcome) == 0 || res.ByOutcome[0].Name == "none" {
		t.Errorf("no Cache-Status outcomes: %+v", res.ByOutcome)
	}
	t.Logf("requests %d, edge hit %.1f%%, chunk hit %.1f%%, origin requests %d, plays %d (unsupported %v)",
		res.Requests, 100*res.EdgeHitRatio, 100**res.EdgeChunkHitRatio, *res.OriginRequests, res.PlaysSent, res.PlaysUnsupported)
}
