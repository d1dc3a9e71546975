package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// testConfig is shaped like a binary's config: a component config nested
// by value, a list of them, a map and unit types.
type testConfig struct {
	Name    string            `yaml:"name"`
	Timeout Duration          `yaml:"timeout"`
	Cache   cacheConfig       `yaml:"cache"`
	Shields []shieldConfig    `yaml:"shields"`
	Labels  map[string]string `yaml:"labels"`
}

type cacheConfig struct {
	ChunkSize Size `yaml:"chunk_size"`
	Slots     int  `yaml:"slots"`
}

type shieldConfig struct {
	Addr   string `yaml:"addr"`
	Weight int    `yaml:"weight"`
}

func defaultTestConfig() testConfig {
	return testConfig{
		Name:    "edge",
		Timeout: Duration(10 * time.Second),
		Cache:   cacheConfig{ChunkSize: 256 * KiB, Slots: 1024},
		Shields: []shieldConfig{{Addr: "127.0.0.1:9000", Weight: 1}},
	}
}

func (c cacheConfig) Validate() error {
	var errs []error
	if c.ChunkSize < 4*KiB || c.ChunkSize > 4*MiB || c.ChunkSize&(c.ChunkSize-1) != 0 {
		errs = append(errs, Errorf("chunk_size", "must be a power of two between 4KiB and 4MiB"))
	}
	if c.Slots <= 0 {
		errs = append(errs, Errorf("slots", "must be positive, got %d", c.Slots))
	}
	return errors.Join(errs...)
}

func (c shieldConfig) Validate() error {
	if c.Addr == "" {
		return Errorf("addr", "must be set")
	}
	return nil
}

func (c testConfig) Validate() error {
	errs := []error{Prefix("cache", c.Cache.Validate())}
	if len(c.Shields) == 0 {
		errs = append(errs, Errorf("shields", "need at least one shield"))
	}
	for i, s := range c.Shields {
		errs = append(errs, Prefix(fmt.Sprintf("shields[%d]", i), s.Validate()))
	}
	if time.Duration(c.Timeout) > 12*time.Hour {
		errs = append(errs, Errorf("timeout", "must be at most 12h, got %v", c.Timeout))
	}
	return errors.Join(errs...)
}

func TestParseKeepsDefaults(t *testing.T) {
	cfg := defaultTestConfig()
	doc := "cache:\n  chunk_size: 1MiB\ntimeout: 250ms\n"
	if err := Parse([]byte(doc), "t.yaml", &cfg); err != nil {
		t.Fatalf("Parse(%q) = %v, want nil", doc, err)
	}
	want := defaultTestConfig()
	want.Cache.ChunkSize = MiB
	want.Timeout = Duration(250 * time.Millisecond)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse(%q) gave %+v, want %+v", doc, cfg, want)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		doc  string
		want func(*testConfig)
	}{
		{"", func(*testConfig) {}},
		{"# only a comment\n", func(*testConfig) {}},
		{"---\n", func(*testConfig) {}},
		{"name: pop1-edge3\n", func(c *testConfig) { c.Name = "pop1-edge3" }},
		{"cache: {chunk_size: 4096}\n", func(c *testConfig) { c.Cache.ChunkSize = 4096 }},
		{"cache: {chunk_size: \"64KiB\"}\n", func(c *testConfig) { c.Cache.ChunkSize = 64 * KiB }},
		{"timeout: 6h\ncache:\n  slots: 7\n", func(c *testConfig) {
			c.Timeout = Duration(6 * time.Hour)
			c.Cache.Slots = 7
		}},
		{"shields:\n  - addr: a:1\n  - addr: b:2\n    weight: 3\n", func(c *testConfig) {
			c.Shields = []shieldConfig{{Addr: "a:1"}, {Addr: "b:2", Weight: 3}}
		}},
		{"labels: {pop: sto}\n", func(c *testConfig) { c.Labels = map[string]string{"pop": "sto"} }},
		{"cache:\n", func(*testConfig) {}}, // null section: defaults stay
	}
	for _, tt := range tests {
		cfg, want := defaultTestConfig(), defaultTestConfig()
		tt.want(&want)
		if err := Parse([]byte(tt.doc), "t.yaml", &cfg); err != nil {
			t.Errorf("Parse(%q) = %v, want nil", tt.doc, err)
			continue
		}
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("Parse(%q) gave %+v, want %+v", tt.doc, cfg, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		doc  string
		want string // the whole error text
	}{
		// Unknown fields, at every depth.
		{"name: e\nnmae: e\n",
			"t.yaml:2: nmae: unknown field"},
		{"name: e\ncache:\n  chunk_sise: 4096\n",
			"t.yaml:3: cache.chunk_sise: unknown field"},
		{"shields:\n  - addr: a:1\n  - adr: b:2\n",
			"t.yaml:3: shields[1].adr: unknown field"},
		{"bogus:\n  a: 1\n",
			"t.yaml:1: bogus: unknown field"},
		{"cache:\n  chunk_size:\n    - 1\n",
			`t.yaml:2: cache.chunk_size: a size must be a number of bytes like 4096 or "256KiB"`},
		{"cache: {slots: 1, colour: red}\n",
			"t.yaml:1: cache.colour: unknown field"},
		// Type errors, and every one of them is reported.
		{"cache:\n  slots: many\n",
			"t.yaml:2: cache.slots: cannot unmarshal !!str `many` into int"},
		{"cache:\n  chunk_size: 12XB\n",
			`t.yaml:2: cache.chunk_size: invalid size "12XB": want a whole number of bytes, like 4096, 256KiB or 1MiB`},
		{"cache:\n  chunk_size: -4096\n",
			`t.yaml:2: cache.chunk_size: invalid size "-4096": want a whole number of bytes, like 4096, 256KiB or 1MiB`},
		{"timeout: 10\n",
			`t.yaml:1: timeout: invalid duration "10": missing unit (like "10s" or "250ms")`},
		{"timeout: [1s]\n",
			`t.yaml:1: timeout: a duration must be a string like "10s"`},
		{"shields: {addr: x}\n",
			"t.yaml:1: shields: cannot unmarshal !!map into []config.shieldConfig"},
		{"name: e\ntimeout: 1x\ncache:\n  slots: x\nextra: 1\n",
			"t.yaml:2: timeout: invalid duration \"1x\"\n" +
				"t.yaml:4: cache.slots: cannot unmarshal !!str `x` into int\n" +
				"t.yaml:5: extra: unknown field"},
		{"cache: {chunk_size: 1y, slots: x}\n", // two on one line
			`t.yaml:1: cache.chunk_size: invalid size "1y": want a whole number of bytes, like 4096, 256KiB or 1MiB` + "\n" +
				"t.yaml:1: cache.slots: cannot unmarshal !!str `x` into int"},
		{"name: a\nname: b\n",
			`t.yaml:2: name: mapping key "name" already defined at line 1`},
		{"just a string\n",
			"t.yaml:1: cannot unmarshal !!str `just a ...` into config.testConfig"},
		// Syntax errors.
		{"name: e\ncache:\n  slots: 1\n bad\n",
			"t.yaml:3: did not find expected key"}, // yaml's line, not ours
		{"name: [\n",
			"t.yaml:1: did not find expected node content"},
		{"name: a\n---\nname: b\n",
			"t.yaml:2: a configuration file holds one YAML document, found another"},
		// Validation errors, placed at the key's line, nested and in lists.
		{"name: e\ncache:\n  slots: 1\n  chunk_size: 3000\n",
			"t.yaml:4: cache.chunk_size: must be a power of two between 4KiB and 4MiB"},
		{"shields:\n  - addr: a:1\n  - weight: 2\n  - addr: \"\"\n",
			"t.yaml:(default): shields[1].addr: must be set\n" +
				"t.yaml:4: shields[2].addr: must be set"},
		{"shields: []\n",
			"t.yaml:1: shields: need at least one shield"},
		{"cache:\n  chunk_size: 3000\n  slots: 0\ntimeout: 24h\n",
			"t.yaml:2: cache.chunk_size: must be a power of two between 4KiB and 4MiB\n" +
				"t.yaml:3: cache.slots: must be positive, got 0\n" +
				"t.yaml:4: timeout: must be at most 12h, got 24h"},
	}
	for _, tt := range tests {
		cfg := defaultTestConfig()
		err := Parse([]byte(tt.doc), "t.yaml", &cfg)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.doc, err, tt.want)
		}
	}
}

// A field the file does not set is reported as "(default)".
func TestParseDefaultFieldError(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.Cache.Slots = 0 // a bad default, say from a wrong DefaultConfig
	err := Parse([]byte("name: e\n"), "t.yaml", &cfg)
	want := "t.yaml:(default): cache.slots: must be positive, got 0"
	if err == nil || err.Error() != want {
		t.Fatalf("Parse = %v, want %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || !e.Default || e.Line != 0 || e.Field != "cache.slots" {
		t.Errorf("Parse = %#v, want an *Error with Default set, no line, field cache.slots", err)
	}
}

// The error values carry the position and the FieldError behind them.
func TestParseErrorValues(t *testing.T) {
	cfg := defaultTestConfig()
	doc := "name: e\ncache:\n    chunk_size: 3000\n"
	err := Parse([]byte(doc), "t.yaml", &cfg)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q) = %v, want an *Error", doc, err)
	}
	want := Error{File: "t.yaml", Line: 3, Column: 5, Field: "cache.chunk_size", Msg: "must be a power of two between 4KiB and 4MiB"}
	if e.File != want.File || e.Line != want.Line || e.Column != want.Column || e.Field != want.Field || e.Msg != want.Msg {
		t.Errorf("Parse(%q) = %+v, want %+v", doc, *e, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "cache.chunk_size" {
		t.Errorf("errors.As(%v, *FieldError) = %v, want the FieldError for cache.chunk_size", err, fe)
	}
}

func TestParseBadDestination(t *testing.T) {
	var cfg testConfig
	var nilp *testConfig
	for _, dst := range []any{cfg, nilp, nil} {
		if err := Parse([]byte("name: x\n"), "t.yaml", dst); err == nil {
			t.Errorf("Parse(..., %T) = nil, want an error", dst)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte("name: e\ncache:\n  chunk_size: 3000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := defaultTestConfig()
	err := Load(path, &cfg)
	want := path + ":3: cache.chunk_size: must be a power of two between 4KiB and 4MiB"
	if err == nil || err.Error() != want {
		t.Errorf("Load(%q) = %v, want %v", path, err, want)
	}
	missing := filepath.Join(dir, "nope.yaml")
	if err := Load(missing, &cfg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(%q) = %v, want an error wrapping os.ErrNotExist", missing, err)
	}
}

// Flags given on the command line win over the file; flags not given do
// not touch the file's values or the defaults.
func TestLoadWithFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(path, []byte("name: from-file\ntimeout: 5s\ncache:\n  chunk_size: 1MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		want    func(*testConfig)
		wantErr string
	}{
		{nil, func(c *testConfig) {}, ""},
		{[]string{"-name", "from-flag"}, func(c *testConfig) { c.Name = "from-flag" }, ""},
		{[]string{"-cache.chunk_size", "64KiB", "-slots", "9"}, func(c *testConfig) {
			c.Cache.ChunkSize = 64 * KiB
			c.Cache.Slots = 9
		}, ""},
		{[]string{"-timeout", "0s"}, func(c *testConfig) { c.Timeout = 0 }, ""},
		// A flag named after its YAML path is named in errors...
		{[]string{"-cache.chunk_size", "5000"}, nil,
			"flag -cache.chunk_size: must be a power of two between 4KiB and 4MiB"},
		// ...others are reported at the field's place, the default here.
		{[]string{"-slots", "0"}, nil,
			path + ":(default): cache.slots: must be positive, got 0"},
	}
	for _, tt := range tests {
		cfg := defaultTestConfig()
		fs := flag.NewFlagSet("edge", flag.ContinueOnError)
		fs.StringVar(&cfg.Name, "name", cfg.Name, "node name")
		fs.Var(&cfg.Timeout, "timeout", "upstream timeout")
		fs.Var(&cfg.Cache.ChunkSize, "cache.chunk_size", "cache chunk size")
		fs.IntVar(&cfg.Cache.Slots, "slots", cfg.Cache.Slots, "cache slots")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("fs.Parse(%q) = %v", tt.args, err)
		}
		err := LoadWithFlags(path, &cfg, fs)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("LoadWithFlags with %q = %v, want %v", tt.args, err, tt.wantErr)
			}
			continue
		}
		want := defaultTestConfig()
		want.Name, want.Timeout, want.Cache.ChunkSize = "from-file", Duration(5*time.Second), MiB
		tt.want(&want)
		if err != nil || !reflect.DeepEqual(cfg, want) {
			t.Errorf("LoadWithFlags with %q = %v, %+v, want %+v", tt.args, err, cfg, want)
		}
	}
}

func TestLoadWithFlagsNoFile(t *testing.T) {
	cfg := defaultTestConfig()
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.StringVar(&cfg.Name, "name", cfg.Name, "node name")
	if err := fs.Parse([]string{"-name", "x"}); err != nil {
		t.Fatal(err)
	}
	if err := LoadWithFlags("", &cfg, fs); err != nil || cfg.Name != "x" {
		t.Errorf("LoadWithFlags(\"\") = %v, name %q, want nil, %q", err, cfg.Name, "x")
	}
	cfg.Cache.Slots = 0
	want := "(default): cache.slots: must be positive, got 0"
	if err := LoadWithFlags("", &cfg, fs); err == nil || err.Error() != want {
		t.Errorf("LoadWithFlags(\"\") = %v, want %v", err, want)
	}
}

// Flags that are not bound to the config, such as fs.Func ones, are not
// set again after the file is loaded.
func TestLoadWithFlagsFunc(t *testing.T) {
	var calls []string
	cfg := defaultTestConfig()
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.Func("peer", "add a peer", func(s string) error { calls = append(calls, s); return nil })
	path := fs.String("config", "", "configuration file")
	if err := fs.Parse([]string{"-peer", "a", "-config", ""}); err != nil {
		t.Fatal(err)
	}
	if err := LoadWithFlags(*path, &cfg, fs); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(calls, []string{"a"}) {
		t.Errorf("fs.Func flag called with %q, want [a]", calls)
	}
}

func TestPrefix(t *testing.T) {
	plain := errors.New("bad section")
	tests := []struct {
		prefix string
		err    error
		want   string
	}{
		{"cache", nil, "<nil>"},
		{"cache", Errorf("chunk_size", "too big"), "cache.chunk_size: too big"},
		{"shields", Errorf("[1]", "duplicate"), "shields[1]: duplicate"},
		{"shields[1]", Errorf("addr", "must be set"), "shields[1].addr: must be set"},
		{"cache", Errorf("", "bad"), "cache: bad"},
		{"", Errorf("slots", "bad"), "slots: bad"},
		{"a", Prefix("b", Errorf("c", "x")), "a.b.c: x"},
		{"cache", errors.Join(Errorf("slots", "x"), nil, Errorf("chunk_size", "y")),
			"cache.slots: x\ncache.chunk_size: y"},
		{"cache", plain, "cache: bad section"},
		{"cache", fmt.Errorf("checking: %w", Errorf("slots", "x")), "cache.slots: x"},
	}
	for _, tt := range tests {
		got := fmt.Sprint(Prefix(tt.prefix, tt.err))
		if got != tt.want {
			t.Errorf("Prefix(%q, %v) = %q, want %q", tt.prefix, tt.err, got, tt.want)
		}
	}
	// Every error Prefix returns is, or joins, *FieldErrors.
	joined := Prefix("x", errors.Join(plain, Errorf("y", "z")))
	for _, e := range joined.(interface{ Unwrap() []error }).Unwrap() {
		if _, ok := e.(*FieldError); !ok {
			t.Errorf("Prefix joined %T, want *FieldError", e)
		}
	}
}

// A config marshalled with yaml.Marshal reads back to itself.
func TestMarshalRoundTrip(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.Timeout = Duration(6 * time.Hour)
	cfg.Cache.ChunkSize = 64 * KiB
	cfg.Labels = map[string]string{"pop": "sto"}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"timeout: 6h\n", "chunk_size: 64KiB\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("yaml.Marshal = %q, want it to contain %q", data, want)
		}
	}
	var back testConfig
	if err := Parse(data, "t.yaml", &back); err != nil || !reflect.DeepEqual(back, cfg) {
		t.Errorf("Parse(%q) = %v, %+v, want %+v", data, err, back, cfg)
	}
	if data, err := yaml.Marshal(Size(64000)); err != nil || string(data) != "64KB\n" {
		t.Errorf("yaml.Marshal(Size(64000)) = %q, %v, want %q", data, err, "64KB\n")
	}
}

// FuzzParse checks that no input makes Parse panic, and that every error
// it returns is clean: *Errors (alone or joined) naming the file, with
// sensible positions.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "name: e\n", "cache:\n  chunk_size: 3000\n  slots: x\n",
		"shields:\n  - addr: a\n  - weight: 1\n", "timeout: 10\nbogus: 1\n",
		"a: &a [*a]\n", "name: [\n", "--- 1\n--- 2\n", "labels: {a: b, a: c}\n",
		"<<: {name: x}\n", "shields: [{addr: a}, {adr: b}]\n", "!!binary aGk=",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaultTestConfig()
		err := Parse(data, "f.yaml", &cfg)
		if err == nil {
			return
		}
		for _, leaf := range leaves(err, nil) {
			e, ok := leaf.(*Error)
			if !ok {
				t.Fatalf("Parse(%q) returned %T %q, want *Error", data, leaf, leaf)
			}
			if e.File != "f.yaml" || e.Line < 0 || e.Column < 0 || e.Msg == "" {
				t.Fatalf("Parse(%q) returned %+v", data, *e)
			}
			if !strings.HasPrefix(e.Error(), "f.yaml") && !strings.HasPrefix(e.Error(), "flag -") {
				t.Fatalf("Parse(%q) error %q does not start with the file name", data, e.Error())
			}
		}
	})
}
