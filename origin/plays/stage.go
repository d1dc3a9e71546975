package plays

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/musiccdn/cdn/playticket"
)

// Rights is the licence check the stage applies: whether trackID may be
// played in country at a time. It must be safe for concurrent use and
// should answer from memory; the stage calls it once per play.
type Rights interface {
	Allowed(trackID, country string, at time.Time) bool
}

// stage is the exactly-once 30-second stage: a consumer group on the plays
// topic whose every poll becomes one Kafka transaction that produces the
// royalties of the qualifying, licensed plays, the dead letters of the
// invalid records, and commits the polled offsets. A crash anywhere before
// the commit aborts the whole poll's output, and the next owner of the
// partitions reads them again.
type stage struct {
	cfg     Config
	kopts   []kgo.Opt // brokers, SASL, TLS
	rights  Rights
	tickets *playticket.Keyring
	m       *metrics
	log     *slog.Logger
	now     func() time.Time

	// inTxn, if set, is called in every transaction after its records
	// are flushed to the broker and before End: the fault test blocks
	// there and SIGKILLs the process, a stage dying mid-transaction.
	inTxn  func()
	cancel context.CancelFunc
	done   chan struct{}
}

func startStage(cfg Config, kopts []kgo.Opt, rights Rights, tickets *playticket.Keyring, m *metrics, log *slog.Logger) *stage {
	ctx, cancel := context.WithCancel(context.Background())
	s := &stage{cfg: cfg, kopts: kopts, rights: rights, tickets: tickets, m: m, log: log, now: time.Now, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	return s
}

// close stops the stage and waits for it; a transaction in flight is
// ended (aborted if incomplete) within TransactionTimeout first. Safe to
// call twice.
func (s *stage) close() {
	s.cancel()
	<-s.done
}

// maxDeadLetterBytes bounds the value copied to the dead-letter topic;
// a longer one is cut and its header "truncated_from" gives its length.
const maxDeadLetterBytes = 64 << 10

// deadLetterLogs is the most dead letters one transaction logs one by one;
// past it a single line gives the count, so a flood of garbage cannot
// flood the log.
const deadLetterLogs = 10

func (s *stage) run(ctx context.Context) {
	defer close(s.done)
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		// Per franz-go's rules, a session whose End failed is not
		// reused: the transactional producer may be in a fatal state.
		opts := append(append(slices.Clone(s.kopts), s.cfg.fetchOpts()...), s.cfg.groupOpts()...)
		sess, err := kgo.NewGroupTransactSession(append(opts,
			kgo.ClientID(s.cfg.transactionalID()),
			kgo.TransactionalID(s.cfg.transactionalID()),
			kgo.TransactionTimeout(s.cfg.TransactionTimeout),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumerGroup(s.cfg.stageGroup()),
			kgo.ConsumeTopics(PlaysTopic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DefaultProduceTopic(RoyaltiesTopic),
			kgo.ProducerBatchCompression(fastZstd),
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
		// Fence now: InitProducerID with our transactional id bumps its
		// epoch, which makes the broker abort whatever a dead
		// predecessor left open, at once. Without it the fence waits
		// for this session's first transactional produce, and until
		// then the predecessor's open transaction holds every
		// read_committed reader of its partitions for up to
		// TransactionTimeout.
		if err = s.fence(ctx, sess); err == nil {
			err = s.loop(ctx, sess)
		}
		sess.Close()
		if ctx.Err() != nil {
			return
		}
		if isFenced(err) {
			// Someone else started a producer with our transactional
			// id after us: another live stage with the same
			// instance id (a crashed predecessor cannot fence its
			// successor). Taking the id back fences it in turn, so
			// the two alternate; say so loudly and back off further
			// each time so the operator sees it and the other one
			// makes progress meanwhile.
			s.m.fenced.Inc()
			s.log.Error("plays stage: fenced by another producer with the same transactional id; two live origins share instance_id, give each its own",
				"transactional_id", s.cfg.transactionalID(), "err", err, "retry_in", backoff)
			if !waitCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		s.log.Warn("plays stage: session failed, starting a new one", "err", err)
		if !waitCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// fence loads the session's producer id, retrying until it succeeds or
// ctx ends.
func (s *stage) fence(ctx context.Context, sess *kgo.GroupTransactSession) error {
	d := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, s.cfg.TransactionTimeout)
		_, _, err := sess.Client().ProducerID(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		if isFenced(err) {
			return err
		}
		s.log.Warn("plays stage: fencing (init producer id) failed, retrying", "transactional_id", s.cfg.transactionalID(), "err", err)
		if !waitCtx(ctx, d) {
			return ctx.Err()
		}
		d = min(2*d, 5*time.Second)
	}
}

func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// loop runs transactions until one fails or ctx ends. Closing (ctx) never
// leaves a transaction open: the one in flight is ended on a context of
// its own, bounded by TransactionTimeout, and aborted if its records did
// not all make it.
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
		// The transaction's own context: a Close arriving now must not
		// cancel the produce and End half way (End with a cancelled
		// context returns without aborting, leaving the transaction to
		// the broker's timeout).
		tctx, cancel := context.WithTimeout(context.Background(), s.cfg.TransactionTimeout)
		committed, err := s.txn(tctx, sess, fetches)
		cancel()
		if !committed {
			s.m.aborted.Inc()
			if err != nil {
				return err
			}
			continue // a rebalance aborted it; the records come back
		}
		s.m.committed.Inc()
	}
}

// txn produces one poll's output and ends the transaction.
func (s *stage) txn(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches) (bool, error) {
	var tally stageTally
	now := s.now()
	promise := kgo.AbortingFirstErrPromise(sess.Client())
	logged := 0
	fetches.EachRecord(func(r *kgo.Record) {
		out, reason := s.transform(r, now, &tally)
		if out == nil && reason != "" {
			out = deadLetter(r, reason)
			if logged < deadLetterLogs {
				s.log.Warn("plays stage: dead letter", "reason", reason, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "bytes", len(r.Value))
			}
			logged++
		}
		if out != nil {
			sess.Produce(ctx, out, promise.Promise())
		}
	})
	if logged > deadLetterLogs {
		s.log.Warn("plays stage: more dead letters in this transaction", "count", logged-deadLetterLogs, "topic", RejectedTopic)
	}
	if s.inTxn != nil {
		sess.Client().Flush(ctx)
		s.inTxn()
	}
	perr := promise.Err()
	committed, err := sess.End(ctx, kgo.TransactionEndTry(perr == nil))
	if perr != nil {
		s.log.Warn("plays stage: produce failed, transaction aborted", "err", perr)
	}
	if committed {
		s.m.royalties.Add(float64(tally.royalties))
		s.m.shortPlays.Add(float64(tally.short))
		s.m.denied.Add(float64(tally.denied))
		s.m.deadLetters.Add(float64(logged))
		for reason, n := range tally.rejected {
			s.m.rejected.WithLabelValues(reason).Add(float64(n))
		}
	}
	return committed, err
}

// deadLetter is the plays.rejected record of a refused plays record.
func deadLetter(r *kgo.Record, reason string) *kgo.Record {
	v := r.Value
	hs := []kgo.RecordHeader{
		{Key: "reason", Value: []byte(reason)},
		{Key: "source_topic", Value: []byte(r.Topic)},
		{Key: "source_partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		{Key: "source_offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
	}
	if len(v) > maxDeadLetterBytes {
		hs = append(hs, kgo.RecordHeader{Key: "truncated_from", Value: strconv.AppendInt(nil, int64(len(v)), 10)})
		v = v[:maxDeadLetterBytes]
	}
	return &kgo.Record{Topic: RejectedTopic, Key: r.Key, Value: v, Headers: hs, Timestamp: r.Timestamp}
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
// time the play was accepted so the ledger can measure its lag. An
// invalid record returns its reason, for the dead-letter topic; a record
// without a valid play ticket (written straight to the topic, not through
// the ingest endpoint) is one, with reason stage_ticket_*.
func (s *stage) transform(r *kgo.Record, now time.Time, t *stageTally) (*kgo.Record, string) {
	e, err := ParseEvent(r.Value, now, s.cfg.Retention, s.tickets)
	switch {
	case err != nil:
		if t.rejected == nil {
			t.rejected = make(map[string]int)
		}
		reason := "stage_" + ReasonOf(err)
		t.rejected[reason]++
		return nil, reason
	case !e.Qualifies():
		t.short++
		return nil, ""
	case !s.rights.Allowed(e.TrackID, e.Country, e.TS):
		t.denied++
		return nil, ""
	}
	ro := royaltyOf(&e)
	t.royalties++
	return &kgo.Record{Key: []byte(e.PlayID), Value: ro.appendTo(nil), Timestamp: r.Timestamp}, ""
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
