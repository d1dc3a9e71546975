package plays

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/musiccdn/cdn/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Topic names. Both topics must have the same partition count so a play id
// lands on the same partition number in each.
const (
	PlaysTopic     = "plays"
	RoyaltiesTopic = "royalties"
	// RejectedTopic is the dead-letter topic: every plays record the stage
	// refuses, as it was, with headers "reason", "source_topic",
	// "source_partition" and "source_offset" (decimal).
	RejectedTopic = "plays.rejected"
)

// Config configures the play-counting pipeline of one origin instance.
type Config struct {
	// Brokers are the Kafka seed brokers. Empty means the embedded kfake
	// broker, started by New under DataDir/kafka.
	Brokers []string `yaml:"brokers"`

	// DataDir holds the embedded broker's log and the SQLite ledger.
	// Required when Brokers or PostgresDSN is empty.
	DataDir string `yaml:"data_dir"`

	// Partitions of the plays and royalties topics when New creates them.
	// It bounds the parallelism of the stage and the ledger sink across
	// instances. Default 8.
	Partitions int `yaml:"partitions"`

	// ReplicationFactor of topics New creates on a real cluster. Default 3
	// (use min.insync.replicas=2 on the topics, set by the operator);
	// ignored for the embedded broker, which has one node.
	ReplicationFactor int `yaml:"replication_factor"`

	// PostgresDSN selects a PostgreSQL ledger ("postgres://..."). Empty
	// means SQLite at DataDir/ledger.db.
	PostgresDSN string `yaml:"postgres_dsn"`

	// TransactionalIDPrefix and InstanceID make the stage's transactional
	// id "<prefix>-<instance>". It must be stable across restarts of one
	// instance (so a restarted stage fences its dead predecessor) and
	// unique across instances: two live stages on one id fence each other
	// at every session start (origin_plays_stage_fenced_total counts it
	// and the log says which id). Default prefix "origin-plays-stage".
	// InstanceID has no default with Brokers set (a real cluster, where
	// several origins run: each must be given its own); with the embedded
	// broker, which only this process uses, it defaults to "0".
	TransactionalIDPrefix string `yaml:"transactional_id_prefix"`
	InstanceID            string `yaml:"instance_id"`

	// TransactionTimeout is the longest a stage transaction may stay open
	// before the broker aborts it (Kafka's transaction.timeout.ms). It
	// bounds how long a stage that dies without its instance coming back
	// holds up the partitions it wrote to (read_committed readers stop at
	// the open transaction). A restarted instance fences its predecessor at
	// once instead. It must exceed the longest healthy transaction (a
	// StageBatch poll, produce and commit: well under a second here).
	// Default 10s; 1s..15m (the broker's transaction.max.timeout.ms).
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`

	// SessionTimeout is the consumer-group session timeout of the stage
	// and the sink: a member that stops heartbeating (a hung or SIGSTOPped
	// process) loses its partitions after this long. Default 10s; 6s..5m
	// (Kafka's group.min.session.timeout.ms is 6s by default and the
	// broker refuses less).
	SessionTimeout time.Duration `yaml:"session_timeout"`

	// MonitorInterval is how often the pipeline samples the topics' last
	// stable offsets and the ledger's offsets for the lag and stall
	// metrics. Default 5s.
	MonitorInterval time.Duration `yaml:"monitor_interval"`

	// Kafka security for a real cluster (ignored with the embedded broker,
	// which listens on 127.0.0.1 only). SASLMechanism is "" (none),
	// "SCRAM-SHA-256" or "SCRAM-SHA-512", with SASLUsername and the
	// password read from SASLPasswordFile (trailing newline trimmed). TLS
	// turns TLS on; TLSCAFile (PEM, default the system roots),
	// TLSCertFile and TLSKeyFile (PEM, both or neither: a client
	// certificate) and TLSServerName (default the broker's host) tune it.
	// Defaults: none, no TLS.
	SASLMechanism    string `yaml:"sasl_mechanism"`
	SASLUsername     string `yaml:"sasl_username"`
	SASLPasswordFile string `yaml:"sasl_password_file"`
	TLS              bool   `yaml:"tls"`
	TLSCAFile        string `yaml:"tls_ca_file"`
	TLSCertFile      string `yaml:"tls_cert_file"`
	TLSKeyFile       string `yaml:"tls_key_file"`
	TLSServerName    string `yaml:"tls_server_name"`

	// GroupPrefix names the consumer groups: "<prefix>-stage" and
	// "<prefix>-ledger". Default "origin-plays".
	GroupPrefix string `yaml:"group_prefix"`

	// MaxBatchEvents is the most events one POST /v1/plays may carry;
	// MaxBodyBytes the largest body. Defaults 1000 and 1 MiB.
	MaxBatchEvents int   `yaml:"max_batch_events"`
	MaxBodyBytes   int64 `yaml:"max_body_bytes"`

	// MaxConcurrentBodies is the most POST /v1/plays bodies read at once
	// by this instance; past it a request is answered 503 with
	// Retry-After before its body is read, so memory held by bodies is at
	// most MaxConcurrentBodies x MaxBodyBytes (64 MiB by default). Default
	// 64.
	MaxConcurrentBodies int `yaml:"max_concurrent_bodies"`

	// BodyReadTimeout is how long a POST /v1/plays body may take to
	// arrive, from when the handler starts reading it; a slower client is
	// cut off (its connection's read deadline). Default 10s.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`

	// UserRate and UserBurst are the per-user limit on POST /v1/plays
	// requests (a token bucket per bearer-token sub): UserRate requests
	// per second sustained, UserBurst at once; past it 429 with
	// Retry-After. A player posts one batch per track played, or its
	// offline backlog in a few batches. Defaults 1 and 30; 0 disables.
	UserRate  float64 `yaml:"user_rate"`
	UserBurst int     `yaml:"user_burst"`

	// RateLimitUsers bounds the users whose buckets are remembered (about
	// 100 bytes each); an evicted user starts again with a full bucket.
	// Default 100000.
	RateLimitUsers int `yaml:"rate_limit_users"`

	// StageBatch and LedgerBatch are the most records one stage
	// transaction or one ledger database transaction covers. Larger
	// batches amortise the commit (a Kafka EndTxn round trip, an fsync)
	// at the price of latency and of more work redone after a crash.
	// Defaults 5000 and 5000.
	StageBatch  int `yaml:"stage_batch"`
	LedgerBatch int `yaml:"ledger_batch"`

	// BatchWait is how long the broker may hold a stage or sink fetch to
	// gather BatchBytes of records. Under a steady trickle it turns many
	// tiny transactions (each a few round trips and a database commit)
	// into fewer large ones, for at most this much added latency.
	// Defaults 50ms and 256 KiB; 0 bytes disables the wait.
	BatchWait  time.Duration `yaml:"batch_wait"`
	BatchBytes int32         `yaml:"batch_bytes"`

	// ProduceLinger is how long the ingest producer waits to fill a batch.
	// Default 5ms.
	ProduceLinger time.Duration `yaml:"produce_linger"`

	// ProduceTimeout bounds how long a POST waits for the broker before
	// it answers 503 and the client retries. Default 10s.
	ProduceTimeout time.Duration `yaml:"produce_timeout"`

	// Retention is how long play ids are kept for deduplication, and so
	// the oldest play the pipeline accepts. Default 31 days (744h).
	Retention time.Duration `yaml:"retention"`

	// PruneInterval is how often the ledger deletes play ids older than
	// Retention. Default 1h.
	PruneInterval time.Duration `yaml:"prune_interval"`
}

// DefaultConfig returns the one-machine defaults: embedded broker and
// SQLite under DataDir, which the caller must still set.
func DefaultConfig() Config {
	return Config{
		Partitions:            8,
		ReplicationFactor:     3,
		TransactionalIDPrefix: "origin-plays-stage",
		GroupPrefix:           "origin-plays",
		MaxBatchEvents:        1000,
		MaxBodyBytes:          1 << 20,
		MaxConcurrentBodies:   64,
		BodyReadTimeout:       10 * time.Second,
		UserRate:              1,
		UserBurst:             30,
		RateLimitUsers:        100_000,
		StageBatch:            5000,
		LedgerBatch:           5000,
		BatchWait:             50 * time.Millisecond,
		BatchBytes:            256 << 10,
		ProduceLinger:         5 * time.Millisecond,
		ProduceTimeout:        10 * time.Second,
		Retention:             31 * 24 * time.Hour,
		PruneInterval:         time.Hour,
		TransactionTimeout:    10 * time.Second,
		SessionTimeout:        10 * time.Second,
		MonitorInterval:       5 * time.Second,
	}
}

// FieldError names the yaml field a Validate error is about; it is the
// config package's, so config.Load points at the field's line.
type FieldError = config.FieldError

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := config.Errorf
	switch {
	case (len(c.Brokers) == 0 || c.PostgresDSN == "") && c.DataDir == "":
		return bad("data_dir", "required for the embedded broker or the SQLite ledger")
	case c.Partitions < 1 || c.Partitions > 1024:
		return bad("partitions", "must be 1..1024, got %d", c.Partitions)
	case c.ReplicationFactor < 1:
		return bad("replication_factor", "must be at least 1, got %d", c.ReplicationFactor)
	case c.TransactionalIDPrefix == "":
		return bad("transactional_id_prefix", "required")
	case c.InstanceID == "" && len(c.Brokers) > 0:
		return bad("instance_id", "required with brokers: a stable id, different for every origin instance")
	case c.InstanceID != "" && !safeKey(c.InstanceID):
		return bad("instance_id", "must be printable ASCII without spaces or quotes")
	case c.TransactionTimeout < time.Second || c.TransactionTimeout > 15*time.Minute:
		return bad("transaction_timeout", "must be 1s..15m, got %s", c.TransactionTimeout)
	case c.SessionTimeout < 6*time.Second || c.SessionTimeout > 5*time.Minute:
		return bad("session_timeout", "must be 6s..5m (the broker's group.min.session.timeout.ms), got %s", c.SessionTimeout)
	case c.MonitorInterval <= 0:
		return bad("monitor_interval", "must be positive")
	case c.SASLMechanism != "" && c.SASLMechanism != "SCRAM-SHA-256" && c.SASLMechanism != "SCRAM-SHA-512":
		return bad("sasl_mechanism", "must be empty, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", c.SASLMechanism)
	case c.SASLMechanism != "" && (c.SASLUsername == "" || c.SASLPasswordFile == ""):
		return bad("sasl_username", "sasl_username and sasl_password_file are required with sasl_mechanism")
	case (c.SASLMechanism != "" || c.TLS) && len(c.Brokers) == 0:
		return bad("brokers", "sasl_mechanism and tls need brokers (the embedded broker is loopback only)")
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return bad("tls_cert_file", "tls_cert_file and tls_key_file go together")
	case !c.TLS && (c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSServerName != ""):
		return bad("tls", "tls_* files are set but tls is false")
	case c.GroupPrefix == "":
		return bad("group_prefix", "required")
	case c.MaxBatchEvents < 1:
		return bad("max_batch_events", "must be positive, got %d", c.MaxBatchEvents)
	case c.MaxBodyBytes < MaxEventBytes:
		return bad("max_body_bytes", "must be at least %d, got %d", MaxEventBytes, c.MaxBodyBytes)
	case c.MaxConcurrentBodies < 1:
		return bad("max_concurrent_bodies", "must be positive, got %d", c.MaxConcurrentBodies)
	case c.BodyReadTimeout <= 0:
		return bad("body_read_timeout", "must be positive")
	case c.UserRate < 0:
		return bad("user_rate", "must not be negative")
	case c.UserRate > 0 && c.UserBurst < 1:
		return bad("user_burst", "must be positive when user_rate is set, got %d", c.UserBurst)
	case c.RateLimitUsers < 2:
		return bad("rate_limit_users", "must be at least 2, got %d", c.RateLimitUsers)
	case c.StageBatch < 1:
		return bad("stage_batch", "must be positive, got %d", c.StageBatch)
	case c.LedgerBatch < 1:
		return bad("ledger_batch", "must be positive, got %d", c.LedgerBatch)
	case c.BatchWait < 0 || c.BatchWait > 10*time.Second:
		return bad("batch_wait", "must be 0..10s, got %s", c.BatchWait)
	case c.BatchBytes < 0:
		return bad("batch_bytes", "must not be negative")
	case c.ProduceLinger < 0:
		return bad("produce_linger", "must not be negative")
	case c.ProduceTimeout <= 0:
		return bad("produce_timeout", "must be positive")
	case c.Retention < 31*24*time.Hour:
		return bad("retention", "must be at least 744h (31 days), got %s", c.Retention)
	case c.PruneInterval <= 0:
		return bad("prune_interval", "must be positive")
	}
	for i, b := range c.Brokers {
		if b == "" {
			return bad(fmt.Sprintf("brokers[%d]", i), "empty address")
		}
	}
	return nil
}

// fetchOpts make the broker hold fetches until BatchBytes arrived or
// BatchWait passed.
func (c Config) fetchOpts() []kgo.Opt {
	if c.BatchBytes <= 0 || c.BatchWait <= 0 {
		return nil
	}
	return []kgo.Opt{kgo.FetchMinBytes(c.BatchBytes), kgo.FetchMaxWait(c.BatchWait)}
}

// withDefaults fills what Validate allows to be empty.
func (c Config) withDefaults() Config {
	if c.InstanceID == "" && len(c.Brokers) == 0 {
		c.InstanceID = "0"
	}
	return c
}

// kafkaOpts are the connection options every client of the pipeline
// uses: the seed brokers, SASL and TLS.
func (c Config) kafkaOpts(brokers []string) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if c.SASLMechanism != "" {
		pw, err := os.ReadFile(c.SASLPasswordFile)
		if err != nil {
			return nil, &FieldError{Field: "sasl_password_file", Msg: err.Error()}
		}
		a := scram.Auth{User: c.SASLUsername, Pass: strings.TrimRight(string(pw), "\r\n")}
		if c.SASLMechanism == "SCRAM-SHA-512" {
			opts = append(opts, kgo.SASL(a.AsSha512Mechanism()))
		} else {
			opts = append(opts, kgo.SASL(a.AsSha256Mechanism()))
		}
	}
	if c.TLS {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, &FieldError{Field: "tls_ca_file", Msg: err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &FieldError{Field: "tls_ca_file", Msg: "no PEM certificate in " + c.TLSCAFile}
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, &FieldError{Field: "tls_cert_file", Msg: err.Error()}
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// groupOpts are the consumer-group timing options of the stage and sink.
func (c Config) groupOpts() []kgo.Opt {
	hb := max(c.SessionTimeout/5, 200*time.Millisecond)
	return []kgo.Opt{kgo.SessionTimeout(c.SessionTimeout), kgo.HeartbeatInterval(hb), kgo.RebalanceTimeout(max(c.SessionTimeout, 10*time.Second))}
}

// fastZstd is the compression of everything the pipeline produces: zstd at
// its fastest level, which still shrinks play events about 4x (ids and
// field names repeat) and costs a third of the default level's CPU, which
// at 139K events/s is the scarcer resource.
var fastZstd = kgo.ZstdCompression().WithLevel(int(zstd.SpeedFastest))

// ProducerCompression is the compression the pipeline's producers use;
// playsbench's baseline uses it too.
func ProducerCompression() kgo.CompressionCodec { return fastZstd }

func (c Config) transactionalID() string { return c.TransactionalIDPrefix + "-" + c.InstanceID }
func (c Config) stageGroup() string      { return c.GroupPrefix + "-stage" }
func (c Config) ledgerGroup() string     { return c.GroupPrefix + "-ledger" }
