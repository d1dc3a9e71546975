package loadtest

import "github.com/musiccdn/cdn/loadtest/workload"

// The workload a run replays is package workload's (shared with
// loadtest/cachesim, which must not import this package); these names keep
// loadtest's API.
type (
	// WorkloadConfig is workload.Config.
	WorkloadConfig = workload.Config
	// BandwidthClass is workload.BandwidthClass.
	BandwidthClass = workload.BandwidthClass
	// Session is workload.Session.
	Session = workload.Session
	// Play is workload.Play.
	Play = workload.Play
	// Fetch is workload.Fetch.
	Fetch = workload.Fetch
	// Generator is workload.Generator.
	Generator = workload.Generator
	// Zipf is workload.Zipf.
	Zipf = workload.Zipf
	// Weighted is workload.Weighted.
	Weighted = workload.Weighted
)

// DefaultWorkloadConfig is workload.DefaultConfig.
func DefaultWorkloadConfig() WorkloadConfig { return workload.DefaultConfig() }

// NewGenerator is workload.NewGenerator.
func NewGenerator(cfg WorkloadConfig) (*Generator, error) { return workload.NewGenerator(cfg) }

// NewZipf is workload.NewZipf.
func NewZipf(n int, s float64) *Zipf { return workload.NewZipf(n, s) }
