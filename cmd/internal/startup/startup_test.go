package startup

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type testConfig struct {
	Listen string `yaml:"listen"`
	Name   string `yaml:"name"`
	Port   int    `yaml:"port"`
}

func (c testConfig) Validate() error {
	if c.Port < 0 {
		return errors.New("port: must not be negative")
	}
	return nil
}

func defaults() testConfig { return testConfig{Listen: ":80", Name: "n0", Port: 1} }

func bindTest(fs *flag.FlagSet, cfg *testConfig) {
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "")
	fs.StringVar(&cfg.Name, "name", cfg.Name, "")
	fs.IntVar(&cfg.Port, "port", cfg.Port, "")
}

func start(t *testing.T, file string, args ...string) (*Config[testConfig], testConfig, *string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	conf := Bind(fs, "configs/test.yaml", defaults, bindTest)
	other := fs.String("other", "", "a flag outside the configuration")
	if file != "" {
		args = append([]string{"-config", file}, args...)
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Load()
	if err != nil {
		t.Fatal(err)
	}
	return conf, cfg, other
}

// TestLoadAndReload: flags win over the file at start and on every
// reload; fields no flag set follow the file. Mutations caught: Reload
// starting from the running configuration instead of fresh defaults
// (the name row), not carrying the given flags (the listen row), carrying
// flags that were not given (the port row), not reading the file again.
func TestLoadAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("listen: ':81'\nname: file\nport: 2\n")
	conf, cfg, other := start(t, path, "-listen", ":9", "-other", "x")
	if want := (testConfig{Listen: ":9", Name: "file", Port: 2}); cfg != want || *other != "x" {
		t.Fatalf("Load = %+v (other %q), want %+v", cfg, *other, want)
	}
	if conf.Path() != path {
		t.Errorf("Path = %q, want %q", conf.Path(), path)
	}
	write("listen: ':82'\nport: 3\n")
	next, err := conf.Reload()
	if want := (testConfig{Listen: ":9", Name: "n0", Port: 3}); err != nil || next != want {
		t.Errorf("Reload = %+v, %v; want %+v", next, err, want)
	}
	// A reload twice gives the same, and the running configuration is
	// not touched.
	if again, _ := conf.Reload(); again != next {
		t.Errorf("second Reload = %+v, want %+v", again, next)
	}
	write("port: -1\n")
	if _, err := conf.Reload(); err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("Reload of an invalid file = %v, want an error naming port", err)
	}
	write("port: [\n")
	if _, err := conf.Reload(); err == nil {
		t.Error("Reload of a malformed file succeeded")
	}
}

// TestLoadWithoutFile: no -config means defaults plus flags.
func TestLoadWithoutFile(t *testing.T) {
	conf, cfg, _ := start(t, "", "-port", "7")
	if want := (testConfig{Listen: ":80", Name: "n0", Port: 7}); cfg != want || conf.Path() != "" {
		t.Errorf("Load = %+v, path %q; want %+v and no path", cfg, conf.Path(), want)
	}
	if next, err := conf.Reload(); err != nil || next != cfg {
		t.Errorf("Reload = %+v, %v; want %+v", next, err, cfg)
	}
}

func TestLogger(t *testing.T) {
	for _, debug := range []bool{false, true} {
		var b bytes.Buffer
		l := Logger(&b, debug)
		l.Debug("d")
		l.Info("i")
		if got := strings.Count(b.String(), "\n"); got != map[bool]int{false: 1, true: 2}[debug] || !strings.HasPrefix(b.String(), "{") {
			t.Errorf("Logger(debug %v) wrote %q", debug, b.String())
		}
		if l.Enabled(context.Background(), -4) != debug {
			t.Errorf("Logger(debug %v): debug enabled %v", debug, !debug)
		}
	}
}

func TestRegistry(t *testing.T) {
	reg := Registry()
	if n, err := testutil.GatherAndCount(reg, "go_goroutines"); err != nil || n != 1 {
		t.Errorf("go_goroutines: %d series, %v", n, err)
	}
}
