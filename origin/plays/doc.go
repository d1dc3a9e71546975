// Package plays counts every qualifying play exactly once, through
// crashes, restarts and client retries, for royalty payments.
//
// The pipeline has three parts, each restartable on its own:
//
//	POST /v1/plays ──► topic "plays" ──► stage ──► topic "royalties" ──► sink ──► ledger
//	  (idempotent       keyed by        (Kafka     keyed by               (one DB      SQLite or
//	   producer,        play_id)         txns)     play_id                 txn/batch)   PostgreSQL
//	   acks=all, zstd)                     │
//	                                       └──► topic "plays.rejected" (dead letters)
//
// Ingest validates each event of a batch (ParseEvent: a bad one is refused
// with its index and reason, the good ones are still taken), produces the
// good ones as the client sent them, and answers 202 only when the broker
// has acknowledged all of them; otherwise 503, and the client retries with
// the same play ids.
//
// # Who may post, and what one request may cost
//
// POST /v1/plays is a player's, on the origin's public listener, with the
// user's bearer token (Trust.Sessions; 401 otherwise). In order, before any
// of the body is read: the token, the user's token bucket
// (Config.UserRate, UserBurst; 429 + Retry-After), Content-Type
// application/json (415), a free body slot (Config.MaxConcurrentBodies;
// 503 + Retry-After). Then the body is read with a deadline
// (Config.BodyReadTimeout), at most Config.MaxBodyBytes (413), element by
// element, and refused as soon as element MaxBatchEvents+1 starts (413).
// Each event must carry the play ticket of its play id (Trust.Tickets,
// package playticket) for the session's user, its track and country, with
// ms_played no longer than the time since the ticket plus 5 s nor the
// track's duration plus 2 s, and ts within ClockSkew of now and not
// before the ticket; see the Reason* constants. The stage checks the
// tickets again (the same ParseEvent), since anything with access to the
// plays topic could write to it: such a record without a valid ticket is
// counted under origin_plays_events_rejected_total{reason="stage_ticket_*"}
// (e.g. stage_ticket_missing, stage_ticket_forged), not paid, and written
// to the dead-letter topic (see Dead letters).
//
// GET /v1/royalties/... is internal (operators and recommendations).
//
// # The stage
//
// A consumer group with a transactional producer (kgo.GroupTransactSession,
// read_committed). Its loop, per franz-go's rules:
//
//	sess := NewGroupTransactSession(...)
//	sess.Client().ProducerID(ctx)          // fence now, retried (see below)
//	for {
//		fetches := sess.PollRecords(ctx, cfg.StageBatch)
//		sess.Begin()
//		for each record: validate; invalid: dead letter; drop if under
//			30 s or rights deny; else produce a royalty record
//		committed, err := sess.End(tctx, produceOK) // also commits the polled offsets
//		if err != nil { close the session and start a new one }
//	}
//
// End aborts instead of committing when the group rebalanced during the
// transaction. So each plays record yields exactly one committed royalty
// record (or dead letter).
//
// No stalls. A read_committed reader stops at the first open transaction
// of a partition, so a transaction left open by a dead stage holds the
// ledger back until something ends it:
//
//   - Fence at start: a new session loads its producer id at once
//     (InitProducerID with the instance's transactional id, retried until
//     it succeeds). That bumps the id's epoch and makes the broker abort
//     whatever a dead predecessor of the same instance left open, instead
//     of waiting for the new session's first transactional produce.
//   - Transaction timeout: Config.TransactionTimeout, 10 s by default
//     (franz-go's default is 40 s). It bounds the stall when an instance
//     dies and does not come back, and must exceed a healthy transaction
//     (a 5,000-record poll, produce and commit: well under a second). The
//     broker's transaction.max.timeout.ms (15 min by default) must allow it.
//   - Close ends the transaction in flight on a context of its own bounded
//     by TransactionTimeout (End on the closing context returns without
//     ending it): committed if all its records made it, aborted otherwise.
//   - Each instance has its own transactional id,
//     "<transactional_id_prefix>-<instance_id>". With brokers configured
//     instance_id has no default: several origins share a cluster, and two
//     live stages on one id fence each other at every session start. A
//     stage that is fenced while alive (kerr.ProducerFenced or
//     InvalidProducerEpoch) logs an error naming the id and that two
//     origins share instance_id, counts origin_plays_stage_fenced_total,
//     and backs off (up to 30 s) before taking the id back, so the
//     operator sees it and the pipeline still moves. (A stage stopped
//     past its transaction timeout, e.g. SIGSTOPped, is fenced the same way
//     once: one count is not an alarm, a rate is.)
//
// Monitoring, every Config.MonitorInterval (5 s):
// origin_plays_ledger_lag_records{partition}, the committed royalties the
// ledger has not applied yet, and
// origin_plays_lso_stalled_seconds{topic,partition}, how long a partition's
// last stable offset has not moved while records sit above it, on the plays
// and royalties topics. Any client that opens a transaction on those
// topics and vanishes stalls them until the broker's timeout; alert when
// origin_plays_lso_stalled_seconds > 2 × transaction_timeout (20 s).
//
// # Dead letters
//
// Anyone with write access to "plays" can write anything. A record the
// stage refuses (garbage, a missing field, an absurd duration or date, a
// value over MaxEventBytes, a missing, forged or mismatched play ticket)
// is produced, in the same transaction, to
// "plays.rejected" as it was (cut to 64 KiB, header "truncated_from"),
// with headers "reason" (as in origin_plays_events_rejected_total, e.g.
// "stage_bad_json" or "stage_ticket_missing"), "source_topic", "source_partition" and
// "source_offset"; the stage logs the first 10 of each transaction with the
// same fields. With a POP running (its addr file names the broker as
// "kafka"):
//
//	echo 'not a play' | kcat -P -b 127.0.0.1:PORT -t plays
//	kcat -C -b 127.0.0.1:PORT -t plays.rejected -e -q -f '%h %s\n'
//
// prints (tried with go run ./cmd/pop):
//
//	reason=stage_bad_json,source_topic=plays,source_partition=3,source_offset=0 not a play
//
// # The sink and the ledger
//
// The sink reads royalties with read_committed and, per poll, writes in one
// database transaction the play ids it has not seen (a duplicate from a
// client retry is ignored), the counts of the new ones, the next offset of
// each partition, and the records it read (plays_consumed, so a record
// applied twice shows). It never commits offsets to Kafka: on start and on
// every assignment it seeks to the offsets in the database. Several sinks
// (origins) share the "<group_prefix>-ledger" group: each owns a set of
// partitions, and because the royalties partition is a function of the play
// id, deduplication is local to it; with PostgreSQL they write their own
// rows, with SQLite each origin has its own file (the embedded setup is one
// origin).
//
// Play ids are deduplicated in one append-only table per UTC day of the
// id's issue time, plays_ids_YYYYMMDD, holding the primary key only. Play
// ids are server-issued ULIDs (48-bit millisecond time, 80 random bits),
// made by playticket.NewID when the origin mints a play's ticket (every
// counted play has one, see above), so
// the day is a function of the id and a retry always lands in the same
// table; Prune drops whole tables whose day ended more than a day before
// the retention cut instead of deleting rows. Ids that are not ULIDs (from
// before play tickets) go to plays_play_ids with their play's time and are
// pruned by row. Plays older than Config.Retention (at least 31 days) are
// refused everywhere, so a pruned id can never be counted again.
//
// The counts, per (track, country, UTC day) and per (user, track), are off
// the batch's critical path. On SQLite the batch appends its counts, summed
// in memory, as one row of plays_deltas, and the sink folds the pending
// rows into the count tables every 3 s in one transaction (the readers of
// counts fold first, so they always see every committed play); many
// batches' counts for one key become one upsert. On PostgreSQL a batch is
// COPYed into a temporary table and one statement inserts the new ids into
// their day tables, upserts both counts for those only (set-based, in key
// order), and writes the offsets. SQLite statements are prepared once per
// connection; PostgreSQL's are cached by pgx. Royalty records are one
// tab-separated line (version 2) that the sink splits without a JSON
// decoder; version-1 JSON records are still read.
//
// # Sizing for 12 billion events a day
//
// 12e9 events/day is 139K/s on average; plan for a 3× peak, 417K/s.
//
//   - Dedup store. Assume 60 % of events qualify (30 s and licensed; the
//     rest never reach the ledger): 7.2e9 ids a day. The day tables store
//     the ULID as its 16 binary bytes (26 as text). In SQLite's WITHOUT
//     ROWID b-tree that is about 16 + 4 bytes per entry at full pages,
//     ~25 with page fill; in PostgreSQL the heap tuple (24-byte header +
//     16) and its b-tree entry (8 + 16) come to ~70 bytes per id with
//     fill. At 7.2e9 a day: 0.18 TB (SQLite) to 0.5 TB (PostgreSQL) a
//     day, 5.8 to 16 TB for the 32 days kept (Retention 31 + the margin
//     day). Since the id carries its day, each day is one table and
//     pruning is a DROP, not 7e9 deletes.
//   - A Bloom filter in front pays only if lookups of absent ids are
//     expensive: here nearly every id is new (only the ~5 % retries are
//     present), so a filter would answer "maybe absent" for 95 % and save
//     no index probe; the insert must touch the index anyway. With today's
//     day-tables, the working set is the current day's index (0.3-0.6 TB at
//     peak retention of a day), which each sink's partitions split. Not
//     built: not worth it for an insert-mostly store.
//   - Partitions and sinks. playsbench measures the whole pipeline (HTTP
//     ingest, broker, stage, sink, database) on one shared 2-core machine
//     at 8.4 µs of CPU per event, the sink about a third of it, and
//     PostgreSQL end to end at 22K-49K events/s depending on the machine's
//     load (measured before play tickets; with the session and ticket
//     checks, a quick 50,000-event run on the same machine gave 59K
//     events/s on SQLite and 21K on PostgreSQL end to end, to be
//     re-measured). Budget 25K events/s per stage instance and per sink
//     against PostgreSQL (an estimate to re-measure on production
//     hardware), so
//     417K/s at peak needs 17 of each; with 2 partitions per member to
//     rebalance smoothly: 64 partitions for plays and royalties (the
//     partition count bounds parallelism and cannot shrink), 24 origins
//     each running a stage and a sink, and the dedup tables spread over
//     PostgreSQL partitions by sink (each sink's rows are disjoint by play
//     id). Kafka: 417K/s × ~250 B ≈ 100 MB/s into plays and a bit less into
//     royalties before compression (zstd shrinks it ~4×), with replication
//     3: a 6-broker cluster is ample.
//
// # Kafka security and the ACLs a deployment needs
//
// Against a real cluster set Config.SASLMechanism (SCRAM-SHA-256 or -512),
// SASLUsername, SASLPasswordFile, and TLS (TLSCAFile, TLSCertFile and
// TLSKeyFile for a client certificate). One principal per origin
// (User:origin-N) needs:
//
//	Topic plays             WRITE, DESCRIBE (ingest); READ (stage)
//	Topic royalties         WRITE, DESCRIBE (stage); READ (sink)
//	Topic plays.rejected    WRITE, DESCRIBE (stage)
//	Group origin-plays-stage   READ
//	Group origin-plays-ledger  READ
//	TransactionalId origin-plays-stage-<instance_id>  WRITE, DESCRIBE (its own only: prefixed ACLs would let one origin fence another)
//	Cluster                 IDEMPOTENT_WRITE (ingest producer, Kafka < 3.0)
//	Topic plays, royalties, plays.rejected  CREATE (only if New creates them; else create them once as an admin)
//
// Operators reading dead letters get READ on plays.rejected and nothing
// else. Nobody outside the origins gets WRITE on royalties: a record
// written there is counted (it is validated, but not checked against a
// ticket).
//
// Production topic settings: plays and royalties with the same partition
// count (Config.Partitions), replication factor 3, min.insync.replicas=2,
// unclean.leader.election.enable=false; the broker's
// transaction.state.log.replication.factor=3 and
// transaction.state.log.min.isr=2; plays.rejected with the same
// replication and a retention long enough to be read (e.g. 30 days).
//
// # One machine
//
// With no brokers configured, New starts an embedded kfake broker under
// DataDir/kafka, listening on 127.0.0.1 only (it has no authentication),
// and a SQLite ledger at DataDir/ledger.db. Its consumer groups need a
// session timeout of at least 6 s (group.min.session.timeout.ms), which
// Config.SessionTimeout enforces.
package plays
