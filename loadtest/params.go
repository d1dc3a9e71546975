package loadtest

import "github.com/musiccdn/cdn/loadtest/runparams"

// RunParams is what a run's JSON report records about its workload and its
// target (package runparams).
type RunParams = runparams.Run

// WorkloadParams is workload.Config in the report's units.
type WorkloadParams = runparams.Workload

// ClassParams is a workload.BandwidthClass in the report.
type ClassParams = runparams.Class

// POPParams is the target POP as far as its edges' hit ratio depends on it.
type POPParams = runparams.POP

// Params returns the report's record of cfg.
func (cfg Config) Params() RunParams {
	return runparams.Of(cfg.Workload, cfg.Compression, cfg.Duration, cfg.POP)
}
