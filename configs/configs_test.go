// Package configs holds the example configuration files; its test keeps
// them loadable by the binaries they are for.
package configs

import (
	"errors"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/pop"
	"github.com/musiccdn/cdn/tier"
)

func TestExamplesLoad(t *testing.T) {
	edge := tier.DefaultEdgeConfig()
	shield := tier.DefaultShieldConfig()
	orig := origin.DefaultConfig()
	p := pop.DefaultConfig()
	for file, dst := range map[string]any{"edge.yaml": &edge, "shield.yaml": &shield, "origin.yaml": &orig, "pop.yaml": &p} {
		if err := config.Load(file, dst); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	if edge.Role != tier.Edge || shield.Role != tier.Shield || len(edge.Keys) != 2 {
		t.Errorf("edge %+v shield %+v", edge.Role, shield.Role)
	}
}

// TestBadFileNamesLine: a bad value stops start-up with the line at fault.
func TestBadFileNamesLine(t *testing.T) {
	cfg := tier.DefaultEdgeConfig()
	doc := "name: e\nrole: edge\nupstreams: [http://127.0.0.1:1]\nkeys: [{id: a, secret: 00112233445566778899aabbccddeeff}]\ncache:\n  chunk_size: 3000\n"
	err := config.Parse([]byte(doc), "edge.yaml", &cfg)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Line != 6 || !strings.Contains(err.Error(), "edge.yaml:6: cache.chunk_size") {
		t.Fatalf("error %v, want edge.yaml:6: cache.chunk_size", err)
	}
	err = config.Parse([]byte("name: e\nrole: edge\nupstream: x\n"), "edge.yaml", &cfg)
	if err == nil || !strings.Contains(err.Error(), "edge.yaml:3") {
		t.Fatalf("unknown field: %v", err)
	}
}
