package plays

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/musiccdn/cdn/metric"
)

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
	s := metric.NewSet(reg)
	m := &metrics{
		accepted: s.Counter("origin_plays_events_accepted_total",
			"Play events acknowledged by the broker after POST /v1/plays."),
		rejected: s.CounterVec("origin_plays_events_rejected_total",
			"Play events refused as invalid, by reason.", "reason"),
		produce: s.Histogram("origin_plays_produce_seconds",
			"Time from POST /v1/plays to the broker's acknowledgement of the whole batch.", prometheus.ExponentialBuckets(0.0005, 2, 16)),
		committed: s.Counter("origin_plays_txn_committed_total",
			"Transactions of the 30-second stage that committed."),
		aborted: s.Counter("origin_plays_txn_aborted_total",
			"Transactions of the 30-second stage that aborted or failed."),
		royalties: s.Counter("origin_plays_royalties_emitted_total",
			"Royalty events committed by the stage (duplicates included; the ledger drops them)."),
		shortPlays: s.Counter("origin_plays_short_plays_total",
			"Plays under 30 s dropped by the stage, in committed transactions."),
		denied: s.Counter("origin_plays_rights_denied_total",
			"Plays dropped by the stage because rights deny (track, country), in committed transactions."),
		counted: s.Counter("origin_plays_ledger_counted_total",
			"Distinct qualifying plays written to the ledger."),
		duplicates: s.Counter("origin_plays_duplicates_total",
			"Royalty events the ledger ignored because their play id was already counted."),
		lag: s.Histogram("origin_plays_ledger_lag_seconds",
			"Time from the event's acceptance by the broker to its ledger commit.", prometheus.ExponentialBuckets(0.001, 1.5, 32)),
		pruned: s.Counter("origin_plays_ledger_pruned_total",
			"Play ids deleted from the ledger after the retention period."),
		fenced: s.Counter("origin_plays_stage_fenced_total",
			"Times the stage was fenced by another live producer with its transactional id: two origins share an instance_id."),
		deadLetters: s.Counter("origin_plays_dead_letters_total",
			"Invalid plays records copied to the plays.rejected topic, in committed transactions."),
		ledgerLag: s.GaugeVec("origin_plays_ledger_lag_records",
			"Royalties records committed on the topic (last stable offset) that the ledger has not consumed yet, by partition (transaction markers included, so 1-2 at rest).", "partition"),
		lsoStalled: s.GaugeVec("origin_plays_lso_stalled_seconds",
			"How long a partition's last stable offset has not moved while records sit above it: an open transaction holds every read_committed reader. Alert above 2x transaction_timeout.", "topic", "partition"),
		ledgerErrs: s.Counter("origin_plays_ledger_errors_total",
			"Times the ledger sink failed (database or Kafka client) and restarted from the offsets stored in its database."),
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
