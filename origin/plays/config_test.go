package plays

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.DataDir = "/tmp/x"
	if err := ok.Validate(); err != nil {
		t.Fatalf("DefaultConfig()+DataDir: Validate() = %v", err)
	}
	real := ok
	real.Brokers, real.InstanceID = []string{"k1:9092", "k2:9092"}, "7"
	for _, tt := range []struct {
		field string
		base  Config
		mut   func(*Config)
	}{
		{"data_dir", ok, func(c *Config) { c.DataDir = "" }},
		{"partitions", ok, func(c *Config) { c.Partitions = 0 }},
		{"retention", ok, func(c *Config) { c.Retention = 24 * time.Hour }},
		{"max_batch_events", ok, func(c *Config) { c.MaxBatchEvents = 0 }},
		// Two origins on one cluster must not share the default id.
		{"instance_id", real, func(c *Config) { c.InstanceID = "" }},
		{"instance_id", ok, func(c *Config) { c.InstanceID = "a b" }},
		{"brokers[1]", real, func(c *Config) { c.Brokers = []string{"a:1", ""} }},
		{"transaction_timeout", ok, func(c *Config) { c.TransactionTimeout = 0 }},
		{"transaction_timeout", ok, func(c *Config) { c.TransactionTimeout = time.Hour }},
		{"session_timeout", ok, func(c *Config) { c.SessionTimeout = 5 * time.Second }},
		{"monitor_interval", ok, func(c *Config) { c.MonitorInterval = 0 }},
		{"sasl_mechanism", real, func(c *Config) { c.SASLMechanism = "PLAIN" }},
		{"sasl_username", real, func(c *Config) { c.SASLMechanism = "SCRAM-SHA-512" }},
		{"brokers", ok, func(c *Config) { c.TLS = true }},
		{"tls_cert_file", real, func(c *Config) { c.TLS, c.TLSCertFile = true, "c.pem" }},
		{"tls", real, func(c *Config) { c.TLSCAFile = "ca.pem" }},
	} {
		c := tt.base
		tt.mut(&c)
		err := c.Validate()
		var fe *FieldError
		if err == nil || !asFieldError(err, &fe) || fe.Field != tt.field {
			t.Errorf("Validate() with bad %s = %v, want a FieldError for it", tt.field, err)
		}
	}
	c := real
	c.DataDir, c.PostgresDSN = "", "postgres://x"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() with real Kafka and PostgreSQL and no data dir = %v, want nil", err)
	}
	if got := ok.withDefaults().InstanceID; got != "0" {
		t.Errorf("embedded broker: default instance id = %q, want 0", got)
	}
}

// TestKafkaOpts checks that SASL/SCRAM and TLS settings become client
// options, and that bad files are named by their field.
func TestKafkaOpts(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("secret\n"), 0o600)
	c := DefaultConfig()
	c.Brokers, c.InstanceID, c.DataDir = []string{"k:9093"}, "1", dir
	c.SASLMechanism, c.SASLUsername, c.SASLPasswordFile = "SCRAM-SHA-256", "origin", pw
	c.TLS = true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	opts, err := c.kafkaOpts(c.Brokers)
	if err != nil || len(opts) != 3 {
		t.Fatalf("kafkaOpts = %d opts, %v; want seed, SASL and TLS", len(opts), err)
	}
	c.SASLPasswordFile = filepath.Join(dir, "missing")
	var fe *FieldError
	if _, err := c.kafkaOpts(c.Brokers); !asFieldError(err, &fe) || fe.Field != "sasl_password_file" {
		t.Errorf("missing password file: %v, want a sasl_password_file error", err)
	}
	c.SASLPasswordFile = pw
	c.TLSCAFile = pw // not PEM
	if _, err := c.kafkaOpts(c.Brokers); !asFieldError(err, &fe) || fe.Field != "tls_ca_file" {
		t.Errorf("bad CA file: %v, want a tls_ca_file error", err)
	}
}
