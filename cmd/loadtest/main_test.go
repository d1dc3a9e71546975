package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanContract: the command scripts call prints one JSON object with
// catalog_bytes for all five tiers; flags given override -config's file;
// bad input is a usage error naming the input.
// Mutations caught: text instead of JSON on --json, the file overriding
// a flag given (config.LoadWithFlags needs flags bound to fields), the
// 125 B per kbit/s·s factor.
func TestPlanContract(t *testing.T) {
	var out bytes.Buffer
	if err := planMain(context.Background(), []string{"--tracks", "100000000", "--avg-duration", "3m30s", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if dec.More() {
		t.Errorf("more than one JSON value")
	}
	if m["catalog_bytes"] != 1.743e15 {
		t.Errorf("catalog_bytes = %v, want 1.743e15", m["catalog_bytes"])
	}
	cfgFile := filepath.Join(t.TempDir(), "plan.yaml")
	if err := os.WriteFile(cfgFile, []byte("tracks: 1000\navg_duration: 100s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := planMain(context.Background(), []string{"-config", cfgFile, "--tracks", "2000", "--json"}, &out); err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["catalog_bytes"] != 2000*100*664*125.0 {
		t.Errorf("flag over file: catalog_bytes %v (%v), want %v", m["catalog_bytes"], err, 2000*100*664*125.0)
	}
	for _, args := range [][]string{{"--tracks", "many"}, {"--tier-mix", "1,2"}, {"--edge-throughput", "fast"}, {"--skew", "9"}} {
		err := planMain(context.Background(), args, &bytes.Buffer{})
		if err == nil || !(errors.Is(err, errUsage) || strings.Contains(err.Error(), "invalid")) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := planMain(context.Background(), []string{"--help"}, &bytes.Buffer{}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestParseCatalog(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		fail bool
	}{
		{"synthetic:100000", 100000, false},
		{"synthetic:1", 1, false},
		{"synthetic:0", 0, true},
		{"synthetic:x", 0, true},
		{"/srv/catalog", 0, true},
	}
	for _, tt := range tests {
		n, err := parseCatalog(tt.in)
		if n != tt.n || (err != nil) != tt.fail {
			t.Errorf("parseCatalog(%q) = %d, %v, want %d, error %v", tt.in, n, err, tt.n, tt.fail)
		}
	}
}

func TestFloats(t *testing.T) {
	got, err := floats("0.8, 1.0,1.2")
	if err != nil || len(got) != 3 || got[0] != 0.8 || got[2] != 1.2 {
		t.Errorf("floats(%q) = %v, %v, want [0.8 1 1.2]", "0.8, 1.0,1.2", got, err)
	}
	if _, err := floats("1,x"); err == nil {
		t.Errorf("floats(%q) accepted", "1,x")
	}
}
