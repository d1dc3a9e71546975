package plays

import (
	"fmt"
	"github.com/musiccdn/cdn/config"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Topic names. Both topics must have the same partition count so a play id
// lands on the same partition number in each.
const (
	PlaysTopic     = "plays"
	RoyaltiesTopic = "royalties"
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
	// unique across instances. Defaults "origin-plays-stage" and "0".
	TransactionalIDPrefix string `yaml:"transactional_id_prefix"`
	InstanceID            string `yaml:"instance_id"`

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
		InstanceID:            "0",
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
	}
}

// FieldError names the yaml field a Validate error is about; it is the
// config package's, so config.Load points at the field's line.
type FieldError = config.FieldError

// Validate reports the first invalid field.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case (len(c.Brokers) == 0 || c.PostgresDSN == "") && c.DataDir == "":
		return bad("data_dir", "required for the embedded broker or the SQLite ledger")
	case c.Partitions < 1 || c.Partitions > 1024:
		return bad("partitions", "must be 1..1024, got %d", c.Partitions)
	case c.ReplicationFactor < 1:
		return bad("replication_factor", "must be at least 1, got %d", c.ReplicationFactor)
	case c.TransactionalIDPrefix == "":
		return bad("transactional_id_prefix", "required")
	case c.InstanceID == "":
		return bad("instance_id", "required")
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

func (c Config) transactionalID() string { return c.TransactionalIDPrefix + "-" + c.InstanceID }
func (c Config) stageGroup() string      { return c.GroupPrefix + "-stage" }
func (c Config) ledgerGroup() string     { return c.GroupPrefix + "-ledger" }
