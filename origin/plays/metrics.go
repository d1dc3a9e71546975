package plays

import "github.com/prometheus/client_golang/prometheus"

// metrics are the pipeline's Prometheus series, all origin_plays_*.
type metrics struct {
	accepted   prometheus.Counter
	rejected   *prometheus.CounterVec // by reason, at ingest, stage or ledger
	produce    prometheus.Histogram
	committed  prometheus.Counter
	aborted    prometheus.Counter
	royalties  prometheus.Counter
	shortPlays prometheus.Counter
	denied     prometheus.Counter
	counted    prometheus.Counter
	duplicates prometheus.Counter
	lag        prometheus.Histogram
	pruned     prometheus.Counter

	fenced      prometheus.Counter
	deadLetters prometheus.Counter
	ledgerLag   *prometheus.GaugeVec // records, by royalties partition
	lsoStalled  *prometheus.GaugeVec // seconds, by topic and partition
	ledgerErrs  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_events_accepted_total",
			Help: "Play events acknowledged by the broker after POST /v1/plays.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "origin_plays_events_rejected_total",
			Help: "Play events refused as invalid, by reason.",
		}, []string{"reason"}),
		produce: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "origin_plays_produce_seconds",
			Help:    "Time from POST /v1/plays to the broker's acknowledgement of the whole batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_txn_committed_total",
			Help: "Transactions of the 30-second stage that committed.",
		}),
		aborted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_txn_aborted_total",
			Help: "Transactions of the 30-second stage that aborted or failed.",
		}),
		royalties: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_royalties_emitted_total",
			Help: "Royalty events committed by the stage (duplicates included; the ledger drops them).",
		}),
		shortPlays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_short_plays_total",
			Help: "Plays under 30 s dropped by the stage, in committed transactions.",
		}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_rights_denied_total",
			Help: "Plays dropped by the stage because rights deny (track, country), in committed transactions.",
		}),
		counted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_ledger_counted_total",
			Help: "Distinct qualifying plays written to the ledger.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_duplicates_total",
			Help: "Royalty events the ledger ignored because their play id was already counted.",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "origin_plays_ledger_lag_seconds",
			Help:    "Time from the event's acceptance by the broker to its ledger commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 1.5, 32),
		}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_ledger_pruned_total",
			Help: "Play ids deleted from the ledger after the retention period.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_stage_fenced_total",
			Help: "Times the stage was fenced by another live producer with its transactional id: two origins share an instance_id.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_dead_letters_total",
			Help: "Invalid plays records copied to the plays.rejected topic, in committed transactions.",
		}),
		ledgerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "origin_plays_ledger_lag_records",
			Help: "Royalties records committed on the topic (last stable offset) that the ledger has not consumed yet, by partition (transaction markers included, so 1-2 at rest).",
		}, []string{"partition"}),
		lsoStalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "origin_plays_lso_stalled_seconds",
			Help: "How long a partition's last stable offset has not moved while records sit above it: an open transaction holds every read_committed reader. Alert above 2x transaction_timeout.",
		}, []string{"topic", "partition"}),
		ledgerErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "origin_plays_ledger_errors_total",
			Help: "Times the ledger sink failed (database or Kafka client) and restarted from the offsets stored in its database.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.accepted, m.rejected, m.produce, m.committed, m.aborted,
		m.royalties, m.shortPlays, m.denied, m.counted, m.duplicates, m.lag, m.pruned,
		m.fenced, m.deadLetters, m.ledgerLag, m.lsoStalled, m.ledgerErrs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
