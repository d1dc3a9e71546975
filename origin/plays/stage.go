package plays

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/playticket"
)

// Rights is the licence check the stage applies: whether trackID may be
// played in country at a time. It must be safe for concurrent use and
// should answer from memory; the stage calls it once per play.
type Rights interface {
	Allowed(trackID, country string, at time.Time) bool
}

// errCrash is how tests make a component stop as if its process died:
// without ending its transaction, or between its database commit and its
// next poll.
var errCrash = errors.New("plays: simulated crash")

// stage is the exactly-once 30-second stage: a consumer group on the plays
// topic whose every poll becomes one Kafka transaction that produces the
// royalties of the qualifying, licensed plays and commits the polled
// offsets. A crash anywhere before the commit aborts the whole poll's
// output, and the next owner of the partitions reads them again.
type stage struct {
	cfg     Config
	brokers []string
	rights  Rights
	tickets *playticket.Keyring
	m       *metrics
	log     *slog.Logger
	now     func() time.Time

	crash  atomic.Bool // test hook: abandon the next transaction after flushing it
	cancel context.CancelFunc
	done   chan struct{}
}

func startStage(cfg Config, brokers []string, rights Rights, tickets *playticket.Keyring, m *metrics, log *slog.Logger) *stage {
	ctx, cancel := context.WithCancel(context.Background())
	s := &stage{cfg: cfg, brokers: brokers, rights: rights, tickets: tickets, m: m, log: log, now: time.Now, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	return s
}

// close stops the stage and waits for it; safe to call twice.
func (s *stage) close() {
	s.cancel()
	<-s.done
}

func (s *stage) run(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		// Per franz-go's rules, a session whose End failed is not
		// reused: the transactional producer may be in a fatal state.
		// A new session with the same transactional id fences the old
		// epoch and aborts whatever it left open.
		sess, err := kgo.NewGroupTransactSession(append(s.cfg.fetchOpts(),
			kgo.SeedBrokers(s.brokers...),
			kgo.TransactionalID(s.cfg.transactionalID()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumerGroup(s.cfg.stageGroup()),
			kgo.ConsumeTopics(PlaysTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DefaultProduceTopic(RoyaltiesTopic),
			kgo.ProducerBatchCompression(kgo.ZstdCompression()),
			kgo.MaxBufferedRecords(4*s.cfg.StageBatch),
			kgo.WithLogger(kgoLogger{s.log.With("component", "plays-stage")}),
		)...)
		if err != nil {
			s.log.Error("plays stage: new session", "err", err)
			if !waitCtx(ctx, time.Second) {
				return
			}
			continue
		}
		err = s.loop(ctx, sess)
		sess.Close()
		if errors.Is(err, errCrash) || ctx.Err() != nil {
			return
		}
		s.log.Warn("plays stage: session failed, starting a new one", "err", err)
		if !waitCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// loop runs transactions until one fails or ctx ends.
func (s *stage) loop(ctx context.Context, sess *kgo.GroupTransactSession) error {
	for {
		fetches := sess.PollRecords(ctx, s.cfg.StageBatch)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return ctx.Err()
		}
		fetches.EachError(func(t string, p int32, err error) {
			s.log.Warn("plays stage: fetch", "topic", t, "partition", p, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		var tally stageTally
		now := s.now()
		promise := kgo.AbortingFirstErrPromise(sess.Client())
		fetches.EachRecord(func(r *kgo.Record) {
			out, ok := s.transform(r, now, &tally)
			if ok {
				sess.Produce(ctx, out, promise.Promise())
			}
		})
		if s.crash.Load() {
			// Get the transaction's records onto the broker, then
			// vanish without ending it, as a killed process would.
			sess.Client().Flush(ctx)
			return errCrash
		}
		perr := promise.Err()
		committed, err := sess.End(ctx, kgo.TransactionEndTry(perr == nil))
		if !committed {
			s.m.aborted.Inc()
			if err != nil {
				return err
			}
			if perr != nil {
				s.log.Warn("plays stage: produce failed, transaction aborted", "err", perr)
			}
			continue // a rebalance aborted it; the records come back
		}
		s.m.committed.Inc()
		s.m.royalties.Add(float64(tally.royalties))
		s.m.shortPlays.Add(float64(tally.short))
		s.m.denied.Add(float64(tally.denied))
		for reason, n := range tally.rejected {
			s.m.rejected.WithLabelValues(reason).Add(float64(n))
		}
	}
}

// stageTally counts one transaction's decisions; they reach the metrics
// only if it commits.
type stageTally struct {
	royalties, short, denied int
	rejected                 map[string]int
}

// transform applies the stage's rules to one plays record: validate it
// (anyone may produce to the topic), drop it under 30 s, drop it where the
// rights deny, and otherwise make its royalty record, which keeps the
// time the play was accepted so the ledger can measure its lag.
func (s *stage) transform(r *kgo.Record, now time.Time, t *stageTally) (*kgo.Record, bool) {
	e, err := ParseEvent(r.Value, now, s.cfg.Retention, s.tickets)
	switch {
	case err != nil:
		if t.rejected == nil {
			t.rejected = make(map[string]int)
		}
		t.rejected["stage_"+ReasonOf(err)]++
		return nil, false
	case !e.Qualifies():
		t.short++
		return nil, false
	case !s.rights.Allowed(e.TrackID, e.Country, e.TS):
		t.denied++
		return nil, false
	}
	ro := royaltyOf(&e)
	v, err := json.Marshal(&ro)
	if err != nil {
		return nil, false // cannot happen: plain strings and ints
	}
	t.royalties++
	return &kgo.Record{Key: []byte(e.PlayID), Value: v, Timestamp: r.Timestamp}, true
}

// waitCtx waits d or until ctx ends, reporting whether d passed.
func waitCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// kgoLogger sends franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	return kgo.LogLevelWarn
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error("kgo: "+msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn("kgo: "+msg, keyvals...)
	case kgo.LogLevelInfo:
		k.l.Debug("kgo: "+msg, keyvals...)
	}
}
