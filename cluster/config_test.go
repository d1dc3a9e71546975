package cluster

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/musiccdn/cdn/config"
)

var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func validConfig() Config {
	c := DefaultConfig()
	c.NodeName = "edge-1"
	c.Role = RoleEdge
	c.HTTPAddr = "127.0.0.1:8080"
	c.SecretKeys = []string{testKey}
	return c
}

func TestValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: Validate() = %v, want nil", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"ephemeral port", func(c *Config) { c.BindPort = 0 }, ""},
		{"shield", func(c *Config) { c.Role = RoleShield }, ""},
		{"fast", func(c *Config) { c.Profile = ProfileFast }, ""},
		{"seed without port", func(c *Config) { c.Seeds = []string{"10.0.0.1"} }, ""},
		{"two keys", func(c *Config) {
			c.SecretKeys = append(c.SecretKeys, base64.StdEncoding.EncodeToString(make([]byte, 16)))
		}, ""},
		{"no name", func(c *Config) { c.NodeName = "" }, "node_name"},
		{"bad bind", func(c *Config) { c.BindAddr = "localhost" }, "bind_addr"},
		{"bad port", func(c *Config) { c.BindPort = 70000 }, "bind_port"},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "x" }, "advertise_addr"},
		{"bad seed", func(c *Config) { c.Seeds = []string{"10.0.0.1:0"} }, "seeds[0]"},
		{"bad second seed", func(c *Config) { c.Seeds = []string{"a:1", ":7946"} }, "seeds[1]"},
		{"no keys", func(c *Config) { c.SecretKeys = nil }, "secret_keys"},
		{"short key", func(c *Config) {
			c.SecretKeys = []string{base64.StdEncoding.EncodeToString(make([]byte, 15))}
		}, "secret_keys[0]"},
		{"not base64", func(c *Config) { c.SecretKeys = []string{"!!"} }, "secret_keys[0]"},
		{"no role", func(c *Config) { c.Role = "" }, "role"},
		{"bad role", func(c *Config) { c.Role = "origin" }, "role"},
		{"long pop", func(c *Config) { c.POP = strings.Repeat("p", 200) }, "pop"},
		{"no http", func(c *Config) { c.HTTPAddr = "" }, "http_addr"},
		{"zero weight", func(c *Config) { c.Weight = 0 }, "weight"},
		{"huge weight", func(c *Config) { c.Weight = 5000 }, "weight"},
		{"bad profile", func(c *Config) { c.Profile = "wan" }, "profile"},
		{"suspicion 3", func(c *Config) { c.SuspicionMult = 3 }, ""},
		{"suspicion 1", func(c *Config) { c.SuspicionMult = 1 }, "suspicion_mult"},
	} {
		c := validConfig()
		tc.edit(&c)
		err := c.Validate()
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: Validate() = %v, want nil", tc.name, err)
			}
			continue
		}
		var fe *config.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: Validate() = %v, want a FieldError for %q", tc.name, err, tc.field)
		}
	}
}

func TestLoadYAML(t *testing.T) {
	doc := `
node_name: edge-a
bind_addr: 10.0.0.5
bind_port: 7946
seeds: ["10.0.0.6:7946", "10.0.0.7"]
secret_keys: ["` + testKey + `"]
role: edge
pop: sto1
http_addr: 10.0.0.5:8080
weight: 2
profile: lan
`
	c := DefaultConfig()
	if err := config.Parse([]byte(doc), "cluster.yaml", &c); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.NodeName != "edge-a" || c.Weight != 2 || len(c.Seeds) != 2 || c.POP != "sto1" {
		t.Errorf("Parse gave %+v", c)
	}
	bad := strings.Replace(doc, "weight: 2", "weight: 0", 1)
	c = DefaultConfig()
	err := config.Parse([]byte(bad), "cluster.yaml", &c)
	if err == nil || !strings.Contains(err.Error(), "cluster.yaml:10: weight:") {
		t.Errorf("Parse(weight 0) = %v, want an error at cluster.yaml:10 naming weight", err)
	}
}

func TestFailureDetectionBound(t *testing.T) {
	c := validConfig()
	c.Profile = ProfileFast
	fast := c.FailureDetectionBound(5)
	if fast <= 0 || fast > 2*time.Second {
		t.Errorf("fast FailureDetectionBound(5) = %v, want (0, 2s]", fast)
	}
	c.Profile = ProfileLAN
	if lan := c.FailureDetectionBound(5); lan <= fast {
		t.Errorf("LAN FailureDetectionBound(5) = %v, want > fast %v", lan, fast)
	}
	t.Logf("FailureDetectionBound(5): fast %v, lan %v", fast, c.FailureDetectionBound(5))
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []meta{
		{Role: RoleEdge, POP: "sto1", HTTPAddr: "127.0.0.1:8080", Weight: 1},
		{Role: RoleShield, HTTPAddr: "http://[::1]:9", Weight: 1000},
		{Role: RoleShield, HTTPAddr: "127.0.0.1:9", Weight: 3, Leaving: true},
		{Role: RoleEdge, POP: strings.Repeat("p", maxMetaString), HTTPAddr: strings.Repeat("h", maxMetaString), Weight: 300},
	} {
		b := encodeMeta(nil, m)
		if len(b) > 512 {
			t.Errorf("encodeMeta(%+v) is %d bytes, over memberlist's 512", m, len(b))
		}
		got, err := decodeMeta(b)
		if err != nil || got != m {
			t.Errorf("decodeMeta(encodeMeta(%+v)) = %+v, %v", m, got, err)
		}
		// A later version may append fields.
		if got, err := decodeMeta(append(b, 7, 7, 7)); err != nil || got != m {
			t.Errorf("decodeMeta with trailing fields = %+v, %v, want %+v", got, err, m)
		}
	}
	for _, b := range [][]byte{nil, {0}, {1}, {1, 4, 'e'}, {1, 0, 0, 0}, {1, 0, 0, 0, 0}, {1, 0, 0, 0, 0xe9, 0x07}} {
		if m, err := decodeMeta(b); err == nil {
			t.Errorf("decodeMeta(%q) = %+v, nil, want an error", b, m)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(nil, meta{Role: RoleEdge, POP: "sto1", HTTPAddr: "127.0.0.1:8080", Weight: 1}))
	f.Add([]byte{1, 255})
	f.Add([]byte{2, 0, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if m.Weight < 1 || m.Weight > maxWeight {
			t.Fatalf("decodeMeta(%q) accepted weight %d", b, m.Weight)
		}
		if len(m.Role) > maxMetaString || len(m.POP) > maxMetaString || len(m.HTTPAddr) > maxMetaString {
			// Lengths up to 255 decode; only encoding is bounded.
			return
		}
		again, err := decodeMeta(encodeMeta(nil, m))
		if err != nil || again != m {
			t.Fatalf("round trip of %+v = %+v, %v", m, again, err)
		}
	})
}
