// Package plays counts every qualifying play exactly once, through
// crashes, restarts and client retries, for royalty payments.
//
// The pipeline has three parts, each restartable on its own:
//
//	POST /v1/plays ──► topic "plays" ──► stage ──► topic "royalties" ──► sink ──► ledger
//	  (idempotent       keyed by        (Kafka     keyed by               (one DB      SQLite or
//	   producer,        play_id)         txns)     play_id                 txn/batch)   PostgreSQL
//	   acks=all, zstd)
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
// counted under rejected_total{reason="stage_ticket_*"} and not paid.
//
// GET /v1/royalties/... is internal (operators and recommendations).
//
// The stage is a consumer group with a transactional producer
// (kgo.GroupTransactSession, read_committed). Its loop, per franz-go's
// rules:
//
//	for {
//		fetches := sess.PollRecords(ctx, cfg.StageBatch)
//		sess.Begin()
//		for each record: validate; drop if under 30 s or rights deny;
//			else produce a royalty record
//		committed, err := sess.End(ctx, produceOK) // also commits the polled offsets
//		if err != nil { close the session and start a new one }
//	}
//
// End aborts instead of committing when the group rebalanced during the
// transaction; a new session with the same transactional id fences a
// crashed predecessor and aborts its open transaction. So each plays
// record yields exactly one committed royalty record.
//
// The sink reads royalties with read_committed and, per poll, writes in
// one database transaction the play ids it has not seen (a duplicate from a
// client retry is ignored), the counts of the new ones per (track,
// country, UTC day) and per (user, track), and the next offset of each
// partition. It never commits offsets to Kafka: on start and on every
// assignment it seeks to the offsets in the database. Play ids are kept
// for Config.Retention (at least 31 days) and then pruned; plays older than
// that are refused everywhere, so a pruned id can never be counted again.
//
// # One machine and many
//
// With no brokers configured, New starts an embedded kfake broker under
// DataDir/kafka and a SQLite ledger at DataDir/ledger.db. With
// Config.Brokers and Config.PostgresDSN the same code runs against a Kafka
// cluster and PostgreSQL. Production topic settings: plays and royalties
// with the same partition count (Config.Partitions, which bounds stage and
// sink parallelism), replication factor 3, min.insync.replicas=2,
// unclean.leader.election.enable=false; the broker's
// transaction.state.log.replication.factor=3 and
// transaction.state.log.min.isr=2. Each origin instance needs its own
// stable Config.InstanceID, so its transactional id
// "<prefix>-<instance>" survives its restarts and differs from the other
// instances'.
package plays
