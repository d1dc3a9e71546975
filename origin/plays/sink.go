package plays

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// sink is the ledger sink: a consumer group on the royalties topic
// (read_committed, so aborted stage output is never seen) that writes each
// poll to the ledger in one database transaction together with the
// offsets it consumed. It never commits offsets to Kafka: on start and on
// every assignment it seeks to the offsets in the database, so the ledger
// and its position cannot disagree after a crash.
type sink struct {
	cfg    Config
	kopts  []kgo.Opt
	ledger *Ledger
	m      *metrics
	log    *slog.Logger
	now    func() time.Time

	// afterCommit, if set, is called after each database commit, before
	// the next poll: the fault test blocks there and SIGKILLs the process.
	afterCommit func()
	cancel      context.CancelFunc
	done        chan struct{}
}

func startSink(cfg Config, kopts []kgo.Opt, ledger *Ledger, m *metrics, log *slog.Logger) *sink {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{cfg: cfg, kopts: kopts, ledger: ledger, m: m, log: log, now: time.Now, cancel: cancel, done: make(chan struct{})}
	go s.run(ctx)
	return s
}

// close stops the sink and waits for it; safe to call twice.
func (s *sink) close() {
	s.cancel()
	<-s.done
}

func (s *sink) run(ctx context.Context) {
	defer close(s.done)
	ctx, stop := context.WithCancel(ctx) // also ends the pruner when run returns on its own
	prune := time.NewTicker(s.cfg.PruneInterval)
	defer prune.Stop()
	pruneDone := make(chan struct{})
	go func() {
		defer close(pruneDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-prune.C:
				n, err := s.ledger.Prune(ctx, s.now().Add(-s.cfg.Retention))
				if err != nil {
					s.log.Warn("plays ledger: prune", "err", err)
					continue
				}
				s.m.pruned.Add(float64(n))
			}
		}
	}()
	defer func() { stop(); <-pruneDone }()

	for ctx.Err() == nil {
		opts := append(append(slices.Clone(s.kopts), s.cfg.fetchOpts()...), s.cfg.groupOpts()...)
		cl, err := kgo.NewClient(append(opts,
			kgo.ConsumerGroup(s.cfg.ledgerGroup()),
			kgo.ConsumeTopics(RoyaltiesTopic),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.AdjustFetchOffsetsFn(s.seekToLedger),
			kgo.WithLogger(kgoLogger{s.log.With("component", "plays-ledger")}),
		)...)
		if err != nil {
			s.m.ledgerErrs.Inc()
			s.log.Error("plays ledger: new client", "err", err)
			if !waitCtx(ctx, time.Second) {
				return
			}
			continue
		}
		err = s.loop(ctx, cl)
		cl.CloseAllowingRebalance()
		if ctx.Err() != nil {
			return
		}
		s.m.ledgerErrs.Inc()
		s.log.Warn("plays ledger: sink failed, restarting from the ledger's offsets", "err", err)
		if !waitCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// seekToLedger replaces the offsets Kafka would start the assigned
// partitions at with the ledger's.
//
// A database that is down (restarting after a crash) is waited for here,
// retried until the group session ends (ctx): an error returned from this
// hook would leave the client without its partitions.
func (s *sink) seekToLedger(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	d := 100 * time.Millisecond
	var stored map[int32]int64
	for {
		var err error
		if stored, err = s.ledger.Offsets(ctx, RoyaltiesTopic); err == nil {
			break
		}
		s.log.Warn("plays ledger: reading stored offsets, retrying", "err", err, "retry_in", d)
		if !waitCtx(ctx, d) {
			return nil, err
		}
		d = min(2*d, 2*time.Second)
	}
	for topic, parts := range assigned {
		if topic != RoyaltiesTopic {
			continue
		}
		for p := range parts {
			if o, ok := stored[p]; ok {
				parts[p] = kgo.NewOffset().At(o)
			} else {
				parts[p] = kgo.NewOffset().AtStart()
			}
		}
	}
	return assigned, nil
}

// foldEvery is how often the sink folds the ledger's pending count deltas
// into the count tables: long enough to sum many batches, short enough
// that a reader's own fold has little to do.
const foldEvery = 3 * time.Second

func (s *sink) loop(ctx context.Context, cl *kgo.Client) error {
	batch := make([]royalty, 0, s.cfg.LedgerBatch)
	accepted := make([]time.Time, 0, s.cfg.LedgerBatch)
	lastFold := s.now()
	for {
		fetches := cl.PollRecords(ctx, s.cfg.LedgerBatch)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return ctx.Err()
		}
		fetches.EachError(func(t string, p int32, err error) {
			s.log.Warn("plays ledger: fetch", "topic", t, "partition", p, "err", err)
		})
		batch, accepted = batch[:0], accepted[:0]
		next := make(map[int32]int64)
		seen := make(map[int32]int64) // records read per partition, valid or not
		rejected := make(map[string]int)
		oldest := s.now().Add(-s.cfg.Retention).UnixMilli()
		fetches.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			seen[r.Partition]++
			ro, err := parseRoyalty(r.Value)
			switch {
			case err != nil:
				rejected["ledger_"+ReasonOf(err)]++
				return
			case ro.TSMS < oldest:
				// Its play id may have been pruned: counting it
				// could count it twice.
				rejected["ledger_"+ReasonTooOld]++
				return
			}
			if at, ok := playIDTime(ro.PlayID); ok && at.UnixMilli() < oldest {
				rejected["ledger_"+ReasonTooOld]++ // the same, for its id's day table
				return
			}
			batch = append(batch, ro)
			accepted = append(accepted, r.Timestamp)
		})
		if len(next) == 0 {
			cl.AllowRebalance()
			continue
		}
		res, err := s.ledger.applyBatch(ctx, RoyaltiesTopic, batch, next, seen)
		if err != nil {
			return err
		}
		now := s.now()
		s.m.counted.Add(float64(res.counted))
		s.m.duplicates.Add(float64(res.duplicates))
		for reason, n := range rejected {
			s.m.rejected.WithLabelValues(reason).Add(float64(n))
		}
		for _, at := range accepted {
			s.m.lag.Observe(now.Sub(at).Seconds())
		}
		if s.afterCommit != nil {
			s.afterCommit()
		}
		cl.AllowRebalance()
		if now.Sub(lastFold) >= foldEvery {
			// Counts reach their tables in bulk, off the batch's
			// transaction (see Ledger).
			if _, err := s.ledger.fold(ctx); err != nil {
				return err
			}
			lastFold = s.now()
		}
	}
}
