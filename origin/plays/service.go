package plays

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/identity"
	"github.com/musiccdn/cdn/playticket"
	"github.com/musiccdn/cdn/ratelimit"
)

// Service is the play-counting pipeline of one origin: the ingest
// endpoint and its producer, the transactional stage, the ledger sink and
// the royalties query endpoint, plus the embedded broker when no brokers
// are configured.
type Service struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	now      func() time.Time
	rights   Rights
	broker   *Broker // nil with a real cluster
	brokers  []string
	kopts    []kgo.Opt // brokers, SASL, TLS: every client's connection options
	ledger   *Ledger
	producer *kgo.Client
	mux      *http.ServeMux
	trust    Trust
	limit    *ratelimit.Limiter
	bodies   chan struct{} // one token per body being read

	mu    sync.Mutex // guards stage and sink, which tests restart
	stage *stage
	sink  *sink

	stopMonitor context.CancelFunc
	monitorDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Trust is what the pipeline checks callers and events against.
type Trust struct {
	// Tickets checks each event's play ticket, at ingest and again in
	// the stage (anything may write to the plays topic). Required.
	Tickets *playticket.Keyring
	// Sessions verifies the bearer token of POST /v1/plays; each event's
	// user_id must be its sub. Required.
	Sessions *identity.Verifier
}

// New validates cfg, starts the embedded broker if cfg.Brokers is empty,
// creates the topics if missing, opens the ledger, and starts the
// producer, the stage and the sink. reg may be nil.
func New(ctx context.Context, cfg Config, rights Rights, trust Trust, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("plays: config: %w", err)
	}
	cfg = cfg.withDefaults()
	if rights == nil {
		return nil, errors.New("plays: nil rights")
	}
	if trust.Tickets == nil || trust.Sessions == nil {
		return nil, errors.New("plays: a ticket keyring and a session verifier are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("plays: metrics: %w", err)
	}
	s := &Service{cfg: cfg, log: logger, m: m, now: time.Now, rights: rights, brokers: cfg.Brokers, trust: trust,
		bodies: make(chan struct{}, cfg.MaxConcurrentBodies),
		limit:  ratelimit.New(ratelimit.Config{Rate: cfg.UserRate, Burst: float64(cfg.UserBurst), MaxKeys: cfg.RateLimitUsers}),
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()

	rf := cfg.ReplicationFactor
	if len(cfg.Brokers) == 0 {
		b, err := StartBroker(ctx, filepath.Join(cfg.DataDir, "kafka"), cfg.Partitions, logger)
		if err != nil {
			return nil, err
		}
		s.broker, s.brokers, rf = b, []string{b.Addr()}, 1
	}

	if s.kopts, err = cfg.kafkaOpts(s.brokers); err != nil {
		return nil, fmt.Errorf("plays: config: %w", err)
	}
	s.producer, err = kgo.NewClient(append(slices.Clone(s.kopts),
		kgo.DefaultProduceTopic(PlaysTopic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default and needs acks=all
		kgo.ProducerBatchCompression(fastZstd),
		kgo.ProducerLinger(cfg.ProduceLinger),
		kgo.RecordDeliveryTimeout(cfg.ProduceTimeout+cfg.ProduceLinger),
		kgo.MaxBufferedRecords(100_000),
		kgo.WithLogger(kgoLogger{logger.With("component", "plays-ingest")}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("plays: producer: %w", err)
	}
	if err := ensureTopics(ctx, s.producer, cfg.Partitions, rf); err != nil {
		return nil, err
	}

	if cfg.PostgresDSN != "" {
		s.ledger, err = OpenPostgres(ctx, cfg.PostgresDSN)
	} else {
		s.ledger, err = OpenSQLite(ctx, filepath.Join(cfg.DataDir, "ledger.db"))
	}
	if err != nil {
		return nil, err
	}

	s.stage = startStage(cfg, s.kopts, rights, trust.Tickets, m, logger)
	s.sink = startSink(cfg, s.kopts, s.ledger, m, logger)
	mctx, stop := context.WithCancel(context.Background())
	s.stopMonitor, s.monitorDone = stop, make(chan struct{})
	mo := &monitor{adm: kadm.NewClient(s.producer), ledger: s.ledger, m: m, log: logger, every: cfg.MonitorInterval, now: time.Now}
	go func() { defer close(s.monitorDone); mo.run(mctx) }()

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/v1/plays", s.servePlays)
	s.mux.HandleFunc("/v1/royalties/tracks/", s.serveRoyalties)
	ok = true
	return s, nil
}

// ensureTopics creates the plays, royalties and dead-letter topics if they do not
// exist. On a real cluster set min.insync.replicas=2 with replication 3.
func ensureTopics(ctx context.Context, cl *kgo.Client, partitions, rf int) error {
	adm := kadm.NewClient(cl)
	var configs map[string]*string
	if rf >= 3 {
		two := "2"
		configs = map[string]*string{"min.insync.replicas": &two}
	}
	resps, err := adm.CreateTopics(ctx, int32(partitions), int16(rf), configs, PlaysTopic, RoyaltiesTopic, RejectedTopic)
	if err != nil {
		return fmt.Errorf("plays: create topics: %w", err)
	}
	for _, r := range resps {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("plays: create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

// Handler serves POST /v1/plays and GET /v1/royalties/tracks/<id>.
func (s *Service) Handler() http.Handler { return s.mux }

// Ledger is the royalty ledger, for readers such as recommendations.
func (s *Service) Ledger() *Ledger { return s.ledger }

// BrokerAddr is the Kafka address the service uses first: the embedded
// broker's, or the first configured one. cmd/pop writes it to its addr
// file as "kafka".
func (s *Service) BrokerAddr() string { return s.brokers[0] }

// Close stops everything New started, in reverse order. It is safe to call
// twice.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		if s.stopMonitor != nil {
			s.stopMonitor()
			<-s.monitorDone
		}
		s.mu.Lock()
		st, sk := s.stage, s.sink
		s.mu.Unlock()
		if st != nil {
			st.close()
		}
		if sk != nil {
			sk.close()
		}
		if s.producer != nil {
			s.producer.Close()
		}
		if s.ledger != nil {
			s.closeErr = s.ledger.Close()
		}
		if s.broker != nil {
			if err := s.broker.Close(); s.closeErr == nil {
				s.closeErr = err
			}
		}
	})
	return s.closeErr
}

func itoa(n int) string { return strconv.Itoa(n) }
