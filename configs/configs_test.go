// Package configs holds the example configuration files; its test keeps
// them loadable by the binaries they are for.
package configs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/musiccdn/cdn/config"
	"github.com/musiccdn/cdn/loadtest/plan"
	"github.com/musiccdn/cdn/origin"
	"github.com/musiccdn/cdn/pop"
	"github.com/musiccdn/cdn/tier"
)

func TestExamplesLoad(t *testing.T) {
	edge := tier.DefaultEdgeConfig()
	shield := tier.DefaultShieldConfig()
	orig := origin.DefaultConfig()
	p := pop.DefaultConfig()
	pl := plan.DefaultConfig()
	for file, dst := range map[string]any{"edge.yaml": &edge, "shield.yaml": &shield, "origin.yaml": &orig, "pop.yaml": &p, "plan.yaml": &pl} {
		if err := config.Load(file, dst); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	if pl.Tracks != 100_000_000 || pl.EdgeCache != 10e12 || pl.Streams != 10000 {
		t.Errorf("plan.yaml: %+v", pl)
	}
	if edge.Role != tier.Edge || shield.Role != tier.Shield || len(edge.Keys) != 2 {
		t.Errorf("edge %+v shield %+v", edge.Role, shield.Role)
	}
	// One tier keyring across the POP, and the shield fills from the
	// origin's internal listener.
	if len(edge.TierKeys) != 2 || !slices.Equal(edge.TierKeys, shield.TierKeys) || !slices.Equal(edge.TierKeys, orig.TierKeys) {
		t.Errorf("tier_keys differ: edge %v shield %v origin %v", edge.TierKeys, shield.TierKeys, orig.TierKeys)
	}
	if shield.Upstreams[0] != "http://"+orig.InternalAddr {
		t.Errorf("shield upstream %s, want the origin's internal listener %s", shield.Upstreams[0], orig.InternalAddr)
	}
	// The standalone http cache: no keys, no shields, one http route.
	standalone := tier.DefaultEdgeConfig()
	if err := config.Load("http-edge.yaml", &standalone); err != nil {
		t.Errorf("http-edge.yaml: %v", err)
	}
	if len(standalone.Routes) != 1 || standalone.Routes[0].Mode != tier.ModeHTTP || len(standalone.Keys) != 0 {
		t.Errorf("http-edge.yaml: %+v", standalone.Routes)
	}
}

// TestDeployExamplesLoad: the separate-hosts POP in deploy/ parses and
// validates once its placeholder secrets are filled in.
func TestDeployExamplesLoad(t *testing.T) {
	// fill_ca is read at validation: a real CA certificate in its place.
	ca := newPKI(t, t.TempDir()).ca
	files, _ := filepath.Glob("deploy/*.yaml")
	if len(files) != 6 {
		t.Fatalf("deploy/ has %d files", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "REPLACE-WITH-32-HEX-DIGITS-OR-MORE-000000000000", "00112233445566778899aabbccddeeff")
		s = strings.ReplaceAll(s, "REPLACE-WITH-32-HEX-DIGITS-OR-MORE-111111111111", "ffeeddccbbaa99887766554433221100")
		s = strings.ReplaceAll(s, "REPLACE-WITH-BASE64-KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
		s = strings.ReplaceAll(s, "REPLACE-WITH-BASE64-ED25519-SEED", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
		s = strings.ReplaceAll(s, "REPLACE-WITH-64-HEX-DIGITS-TIER-KEY-2", strings.Repeat("2f", 32))
		s = strings.ReplaceAll(s, "REPLACE-WITH-64-HEX-DIGITS-TIER-KEY-1", strings.Repeat("1f", 32))
		s = strings.ReplaceAll(s, "/etc/musiccdn/tls/pop-ca.pem", ca)
		var dst any
		switch base := filepath.Base(f); {
		case strings.HasPrefix(base, "edge"):
			c := tier.DefaultEdgeConfig()
			dst = &c
		case strings.HasPrefix(base, "shield"):
			c := tier.DefaultShieldConfig()
			dst = &c
		default:
			c := origin.DefaultConfig()
			dst = &c
		}
		if err := config.Parse([]byte(s), f, dst); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		// Internal listeners on the private network, never 0.0.0.0;
		// an edge's peers fill from its internal listener (plain
		// HTTP), not its public TLS port (issue 10, item 12).
		switch c := dst.(type) {
		case *tier.Config:
			if strings.HasPrefix(c.InternalAddr, "0.0.0.0") || c.InternalAddr == "" {
				t.Errorf("%s: internal_addr %q is not a private address", f, c.InternalAddr)
			}
			if c.Role == tier.Edge && c.Cluster.HTTPAddr != c.InternalAddr {
				t.Errorf("%s: cluster.http_addr %q, want the internal listener %q", f, c.Cluster.HTTPAddr, c.InternalAddr)
			}
			if c.Role == tier.Edge && (c.FillCA == "" || !strings.HasPrefix(c.Upstreams[0], "https://")) {
				t.Errorf("%s: fills from %v with fill_ca %q, want https verified by the POP's CA", f, c.Upstreams, c.FillCA)
			}
			// Shields serve fills over TLS, verified by the edges'
			// fill_ca (issue 16): never a plain-HTTP fallback.
			if c.Role == tier.Shield && (c.Cluster.HTTPAddr != "https://"+c.Listen || c.TLSCert == "" || strings.HasPrefix(c.Listen, "0.0.0.0")) {
				t.Errorf("%s: a shield's fill listener %q must be private and advertised (http_addr %q)", f, c.Listen, c.Cluster.HTTPAddr)
			}
		case *origin.Config:
			if strings.HasPrefix(c.InternalAddr, "0.0.0.0") {
				t.Errorf("%s: internal_addr %q is public", f, c.InternalAddr)
			}
		}
	}
}

// TestBadFileNamesLine: a bad value stops start-up with the line at fault.
func TestBadFileNamesLine(t *testing.T) {
	cfg := tier.DefaultEdgeConfig()
	doc := "name: e\nrole: edge\nupstreams: [http://127.0.0.1:1]\nkeys: [{id: a, secret: 00112233445566778899aabbccddeeff}]\ncache:\n  chunk_size: 3000\ntier_keys: [{id: t, secret: " + strings.Repeat("ab", 32) + "}]\n"
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
