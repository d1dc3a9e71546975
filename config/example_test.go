package config_test

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/musiccdn/cdn/config"
)

// CacheConfig is a component's config: yaml tags, documented defaults, and
// a Validate method naming fields by their YAML keys.
type CacheConfig struct {
	// ChunkSize is the size of a cached chunk. Default 256KiB.
	ChunkSize config.Size `yaml:"chunk_size"`
	// TTL is how long an object is fresh. Default 6h.
	TTL config.Duration `yaml:"ttl"`
}

func DefaultCacheConfig() CacheConfig {
	return CacheConfig{ChunkSize: 256 * config.KiB, TTL: config.Duration(6 * time.Hour)}
}

func (c CacheConfig) Validate() error {
	if c.ChunkSize < 4*config.KiB || c.ChunkSize > 4*config.MiB || c.ChunkSize&(c.ChunkSize-1) != 0 {
		return config.Errorf("chunk_size", "must be a power of two between 4KiB and 4MiB")
	}
	return nil
}

// EdgeConfig is a binary's config, holding its components' configs.
type EdgeConfig struct {
	Addr  string      `yaml:"addr"`
	Cache CacheConfig `yaml:"cache"`
}

func DefaultEdgeConfig() EdgeConfig {
	return EdgeConfig{Addr: "127.0.0.1:8080", Cache: DefaultCacheConfig()}
}

func (c EdgeConfig) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, config.Errorf("addr", "must be set"))
	}
	return errors.Join(append(errs, config.Prefix("cache", c.Cache.Validate()))...)
}

// A binary binds its flags to the fields of its config, parses them, and
// loads the file with LoadWithFlags (here ParseWithFlags, to keep the file
// inline): the file overrides the defaults, and the flags given override
// the file. In a main:
//
//	cfg := DefaultEdgeConfig()
//	fs := flag.NewFlagSet("edge", flag.ExitOnError)
//	path := fs.String("config", "configs/edge.yaml", "configuration file")
//	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
//	fs.Var(&cfg.Cache.ChunkSize, "cache.chunk_size", "cache chunk size")
//	fs.Parse(os.Args[1:])
//	if err := config.LoadWithFlags(*path, &cfg, fs); err != nil {
//		fmt.Fprintln(os.Stderr, err)
//		os.Exit(2)
//	}
func Example() {
	file := []byte(`
addr: 127.0.0.1:9000
cache:
  chunk_size: 1MiB
`)
	cfg := DefaultEdgeConfig()
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	fs.Var(&cfg.Cache.ChunkSize, "cache.chunk_size", "cache chunk size")
	fs.Var(&cfg.Cache.TTL, "cache.ttl", "cache freshness lifetime")
	if err := fs.Parse([]string{"-addr", "127.0.0.1:9443"}); err != nil {
		panic(err)
	}
	if err := config.ParseWithFlags(file, "configs/edge.yaml", &cfg, fs); err != nil {
		panic(err)
	}
	// addr from the flag, chunk_size from the file, ttl the default.
	fmt.Println(cfg.Addr, cfg.Cache.ChunkSize, cfg.Cache.TTL)
	// Output: 127.0.0.1:9443 1MiB 6h
}

func ExampleParse() {
	file := []byte(`addr: 127.0.0.1:9000
cache:
  chunk_size: 3000
  ttl: 10
  colour: blue
`)
	cfg := DefaultEdgeConfig()
	fmt.Println(config.Parse(file, "configs/edge.yaml", &cfg))

	cfg = DefaultEdgeConfig()
	fmt.Println(config.Parse([]byte("cache:\n  chunk_size: 3000\n"), "configs/edge.yaml", &cfg))
	// Output:
	// configs/edge.yaml:4: cache.ttl: invalid duration "10": missing unit (like "10s" or "250ms")
	// configs/edge.yaml:5: cache.colour: unknown field
	// configs/edge.yaml:2: cache.chunk_size: must be a power of two between 4KiB and 4MiB
}
