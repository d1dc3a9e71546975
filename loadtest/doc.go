// Package loadtest is the bundled load tool: simulated listeners that play
// tracks through a POP's front door (manifests from the origin, signed
// range requests to the edges), check every byte they receive against the
// synthetic catalog, and measure latency honestly.
//
// The workload (package workload) is pure and deterministic for a seed: Poisson
// session arrivals, Zipf track popularity, album/playlist/radio locality,
// skips, seeks, a tier per bandwidth class, and the range requests of a
// player (the first FirstFetch at once, then FetchAhead whenever the buffer
// falls to LowWater). Run carries the plan out open-loop: each request is
// timed from when it was due, so a stall in the target lands in the
// percentiles instead of slowing the generator (no coordinated omission).
//
// A caller's loop:
//
//	cfg := loadtest.DefaultConfig()
//	cfg.Workload.Tracks, cfg.Workload.Seed = 100000, 1 // the POP's catalog
//	t, err := loadtest.LoadTargets("pop.addr.json")
//	res, err := loadtest.Run(ctx, cfg, t)
//	res.WriteText(os.Stdout)
//	if err := res.Check(0, 0); err != nil { os.Exit(1) }
//
// The cache policy study and the POP model live in loadtest/cachesim; the
// capacity planner ("loadtest plan", which also predicts a finished run's
// hit ratio from the params its report records) in loadtest/plan.
package loadtest
