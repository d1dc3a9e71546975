// Package startup is what the long-running commands (cmd/edge,
// cmd/shield, cmd/origin, cmd/pop) do the same way at start: a
// configuration from the YAML file named by -config under the flags given,
// read again the same way on a reload; a JSON logger; a metrics registry
// with the Go runtime's and the process's collectors.
package startup

import (
	"flag"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/musiccdn/cdn/config"
)

// Config is a command's configuration of type T: its defaults, the flags
// bound to its fields, and the -config file.
type Config[T any] struct {
	fs   *flag.FlagSet
	path *string
	def  func() T
	bind func(*flag.FlagSet, *T)
	cfg  T // what the flags are bound to
}

// Bind declares -config on fs (example names the example file in
// configs/) and the flags bind declares, bound to a configuration made by
// def. The caller may declare other flags on fs, then parses it and calls
// Load.
func Bind[T any](fs *flag.FlagSet, example string, def func() T, bind func(*flag.FlagSet, *T)) *Config[T] {
	c := &Config[T]{fs: fs, def: def, bind: bind, cfg: def()}
	c.path = fs.String("config", "", "YAML configuration file (see "+example+")")
	bind(fs, &c.cfg)
	return c
}

// Path is the -config file, "" when none was given.
func (c *Config[T]) Path() string { return *c.path }

// Load loads the -config file (if any) over the defaults, with the flags
// given on top (config.LoadWithFlags), and returns the validated
// configuration. Call it once, after fs is parsed.
func (c *Config[T]) Load() (T, error) {
	err := config.LoadWithFlags(*c.path, &c.cfg, c.fs)
	return c.cfg, err
}

// Reload reads the -config file again over fresh defaults, with the
// configuration flags given at start on top, and validates it: what a
// flag set stays as it is, whatever the file now says. Safe to call from
// any goroutine once Load has returned.
func (c *Config[T]) Reload() (T, error) {
	next := c.def()
	fs := flag.NewFlagSet(c.fs.Name(), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.bind(fs, &next)
	var err error
	c.fs.Visit(func(f *flag.Flag) {
		if fs.Lookup(f.Name) != nil && err == nil {
			// A bound flag reads back the value given: Load set it again
			// after the file.
			err = fs.Set(f.Name, f.Value.String())
		}
	})
	if err != nil {
		return next, err
	}
	err = config.LoadWithFlags(*c.path, &next, fs)
	return next, err
}

// Logger returns the commands' logger: JSON on w, at debug level when
// debug is set, else info.
func Logger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Registry returns a metrics registry holding the Go runtime's and the
// process's collectors, for the command's components to add theirs to.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
