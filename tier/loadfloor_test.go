package tier

import (
	"strings"
	"testing"

	"github.com/musiccdn/cdn/tierauth"
)

// TestLoadFloorZeroRefused: load_floor 0 once passed validation and was
// silently run as 32; it is now an error naming the field. Mutation
// caught: validating "< 0" again.
func TestLoadFloorZeroRefused(t *testing.T) {
	cfg := DefaultEdgeConfig()
	cfg.Keys = []Key{testKey}
	cfg.TierKeys = []tierauth.KeyConfig{testTierKey}
	cfg.Upstreams = []string{"http://127.0.0.1:1"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("baseline config: %v", err)
	}
	cfg.LoadFloor = 0
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "load_floor") {
		t.Errorf("Validate(load_floor: 0) = %v, want an error naming load_floor", err)
	}
}
