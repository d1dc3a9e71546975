package plays

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Ledger is the royalty ledger: the play ids counted so far, the
// qualifying plays per (track, country, day) and per (user, track), and the
// royalties-topic offsets consumed, all changed together in one database
// transaction per batch so that a crash at any point leaves them agreeing.
// It is SQLite (WAL mode) on one machine and PostgreSQL past one.
type Ledger struct {
	w  database // the sink's writes
	r  database // queries; the same as w for SQLite
	pg bool
}

// insert chunk sizes: well under SQLite's and PostgreSQL's bound-parameter
// limits (32766 and 65535).
const (
	idChunk    = 500
	countChunk = 500
)

// OpenSQLite opens (creating if needed) a SQLite ledger at path.
func OpenSQLite(ctx context.Context, path string) (*Ledger, error) {
	q := url.Values{}
	// WAL lets the query endpoint read while the sink writes. NORMAL
	// synchronous in WAL mode loses no committed transaction on a process
	// crash, only on power loss, which is the trade the embedded default
	// makes; a production ledger is PostgreSQL.
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(4)
	d := sqlDB{db}
	return openLedger(ctx, d, d, false)
}

// OpenPostgres opens a PostgreSQL ledger at dsn, creating its tables if
// needed.
func OpenPostgres(ctx context.Context, dsn string) (*Ledger, error) {
	if _, err := pgx.ParseConfig(dsn); err != nil {
		return nil, fmt.Errorf("plays: ledger: postgres dsn: %w", err)
	}
	return openLedger(ctx, &pgDB{dsn: dsn}, &pgDB{dsn: dsn}, true)
}

func openLedger(ctx context.Context, w, r database, pg bool) (*Ledger, error) {
	l := &Ledger{w: w, r: r, pg: pg}
	if err := l.migrate(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (l *Ledger) migrate(ctx context.Context) error {
	// In SQLite a WITHOUT ROWID table is stored in its primary key's
	// b-tree, so each insert touches one tree instead of two.
	clustered := " WITHOUT ROWID"
	if l.pg {
		clustered = ""
	}
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS plays_play_ids (
			play_id TEXT PRIMARY KEY,
			ts_ms   BIGINT NOT NULL)` + clustered,
		`CREATE INDEX IF NOT EXISTS plays_play_ids_ts ON plays_play_ids (ts_ms)`,
		`CREATE TABLE IF NOT EXISTS plays_track_counts (
			track_id TEXT NOT NULL,
			country  TEXT NOT NULL,
			day      TEXT NOT NULL,
			plays    BIGINT NOT NULL,
			PRIMARY KEY (track_id, country, day))` + clustered,
		`CREATE TABLE IF NOT EXISTS plays_user_track_counts (
			user_id  TEXT NOT NULL,
			track_id TEXT NOT NULL,
			plays    BIGINT NOT NULL,
			PRIMARY KEY (user_id, track_id))` + clustered,
		`CREATE TABLE IF NOT EXISTS plays_offsets (
			topic       TEXT NOT NULL,
			part        INTEGER NOT NULL,
			next_offset BIGINT NOT NULL,
			PRIMARY KEY (topic, part))`,
	}
	for _, s := range ddl {
		if _, err := l.w.exec(ctx, s); err != nil {
			return fmt.Errorf("plays: ledger: migrate: %w", err)
		}
	}
	return nil
}

// Close closes the database. It is safe to call twice.
func (l *Ledger) Close() error {
	err := l.w.close()
	if l.r != l.w {
		if err2 := l.r.close(); err == nil {
			err = err2
		}
	}
	return err
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (l *Ledger) rebind(q string) string {
	if !l.pg {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + len(q)/4)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Offsets returns the next offset to consume for each partition of topic
// that the ledger has recorded.
func (l *Ledger) Offsets(ctx context.Context, topic string) (map[int32]int64, error) {
	rows, err := l.w.query(ctx, l.rebind(`SELECT part, next_offset FROM plays_offsets WHERE topic = ?`), topic)
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: offsets: %w", err)
	}
	defer rows.Close()
	m := make(map[int32]int64)
	for rows.Next() {
		var p int32
		var o int64
		if err := rows.Scan(&p, &o); err != nil {
			return nil, fmt.Errorf("plays: ledger: offsets: %w", err)
		}
		m[p] = o
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("plays: ledger: offsets: %w", err)
	}
	return m, nil
}

// applyResult is what one batch changed.
type applyResult struct {
	counted    int
	duplicates int
}

// apply writes one batch in one transaction: the play ids not seen before,
// the counts of those new plays only, and next, the offset after the last
// record of the batch for each partition (never moved backwards).
func (l *Ledger) apply(ctx context.Context, topic string, batch []royalty, next map[int32]int64) (applyResult, error) {
	var res applyResult
	tx, err := l.w.begin(ctx)
	if err != nil {
		return res, fmt.Errorf("plays: ledger: begin: %w", err)
	}
	defer tx.rollback(ctx)

	// Duplicates inside the batch are dropped first, so each statement
	// sees each play id at most once.
	seen := make(map[string]struct{}, len(batch))
	uniq := batch[:0:0]
	for i := range batch {
		if _, dup := seen[batch[i].PlayID]; dup {
			res.duplicates++
			continue
		}
		seen[batch[i].PlayID] = struct{}{}
		uniq = append(uniq, batch[i])
	}

	fresh := make(map[string]struct{}, len(uniq))
	for start := 0; start < len(uniq); start += idChunk {
		chunk := uniq[start:min(start+idChunk, len(uniq))]
		var q strings.Builder
		q.WriteString(`INSERT INTO plays_play_ids (play_id, ts_ms) VALUES `)
		args := make([]any, 0, 2*len(chunk))
		for i := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?)")
			args = append(args, chunk[i].PlayID, chunk[i].TSMS)
		}
		q.WriteString(` ON CONFLICT (play_id) DO NOTHING RETURNING play_id`)
		rows, err := tx.query(ctx, l.rebind(q.String()), args...)
		if err != nil {
			return res, fmt.Errorf("plays: ledger: insert play ids: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return res, fmt.Errorf("plays: ledger: insert play ids: %w", err)
			}
			fresh[id] = struct{}{}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("plays: ledger: insert play ids: %w", err)
		}
	}
	res.counted = len(fresh)
	res.duplicates += len(uniq) - len(fresh)

	type tcKey struct{ track, country, day string }
	type utKey struct{ user, track string }
	tc := make(map[tcKey]int64)
	ut := make(map[utKey]int64)
	for i := range uniq {
		r := &uniq[i]
		if _, ok := fresh[r.PlayID]; !ok {
			continue
		}
		tc[tcKey{r.TrackID, r.Country, r.day()}]++
		ut[utKey{r.UserID, r.TrackID}]++
	}

	tcRows := make([][]any, 0, len(tc))
	for k, n := range tc {
		tcRows = append(tcRows, []any{k.track, k.country, k.day, n})
	}
	if err := l.upsert(ctx, tx, `INSERT INTO plays_track_counts (track_id, country, day, plays) VALUES `,
		`(?,?,?,?)`, ` ON CONFLICT (track_id, country, day) DO UPDATE SET plays = plays_track_counts.plays + excluded.plays`, tcRows); err != nil {
		return res, err
	}
	utRows := make([][]any, 0, len(ut))
	for k, n := range ut {
		utRows = append(utRows, []any{k.user, k.track, n})
	}
	if err := l.upsert(ctx, tx, `INSERT INTO plays_user_track_counts (user_id, track_id, plays) VALUES `,
		`(?,?,?)`, ` ON CONFLICT (user_id, track_id) DO UPDATE SET plays = plays_user_track_counts.plays + excluded.plays`, utRows); err != nil {
		return res, err
	}
	offRows := make([][]any, 0, len(next))
	for p, o := range next {
		offRows = append(offRows, []any{topic, p, o})
	}
	if err := l.upsert(ctx, tx, `INSERT INTO plays_offsets (topic, part, next_offset) VALUES `,
		`(?,?,?)`, ` ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset WHERE plays_offsets.next_offset < excluded.next_offset`, offRows); err != nil {
		return res, err
	}
	if err := tx.commit(ctx); err != nil {
		return res, fmt.Errorf("plays: ledger: commit: %w", err)
	}
	return res, nil
}

// upsert runs head + tuple,tuple,... + tail over rows in chunks.
func (l *Ledger) upsert(ctx context.Context, tx dbTx, head, tuple, tail string, rows [][]any) error {
	for start := 0; start < len(rows); start += countChunk {
		chunk := rows[start:min(start+countChunk, len(rows))]
		var q strings.Builder
		q.WriteString(head)
		args := make([]any, 0, len(chunk)*len(chunk[0]))
		for i, r := range chunk {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(tuple)
			args = append(args, r...)
		}
		q.WriteString(tail)
		if _, err := tx.exec(ctx, l.rebind(q.String()), args...); err != nil {
			return fmt.Errorf("plays: ledger: upsert: %w", err)
		}
	}
	return nil
}

// TrackCount is the qualifying plays of a track in one country on one day.
type TrackCount struct {
	Day     string `json:"day"`
	Country string `json:"country"`
	Plays   int64  `json:"plays"`
}

// TrackPlays returns a track's qualifying plays by day and country, sorted
// by day then country, and their total.
func (l *Ledger) TrackPlays(ctx context.Context, trackID string) (int64, []TrackCount, error) {
	rows, err := l.r.query(ctx, l.rebind(
		`SELECT day, country, plays FROM plays_track_counts WHERE track_id = ? ORDER BY day, country`), trackID)
	if err != nil {
		return 0, nil, fmt.Errorf("plays: ledger: track plays: %w", err)
	}
	defer rows.Close()
	var total int64
	var out []TrackCount
	for rows.Next() {
		var c TrackCount
		if err := rows.Scan(&c.Day, &c.Country, &c.Plays); err != nil {
			return 0, nil, fmt.Errorf("plays: ledger: track plays: %w", err)
		}
		total += c.Plays
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return 0, nil, fmt.Errorf("plays: ledger: track plays: %w", err)
	}
	return total, out, nil
}

// TotalPlays returns every track's qualifying plays.
func (l *Ledger) TotalPlays(ctx context.Context) (map[string]int64, error) {
	rows, err := l.r.query(ctx, `SELECT track_id, CAST(SUM(plays) AS BIGINT) FROM plays_track_counts GROUP BY track_id`)
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: totals: %w", err)
	}
	defer rows.Close()
	m := make(map[string]int64)
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, fmt.Errorf("plays: ledger: totals: %w", err)
		}
		m[t] = n
	}
	return m, rows.Err()
}

// UserTrackCounts calls fn for every (user, track) with its qualifying
// play count, in (user, track) order; it stops at fn's first error and
// returns it. The recommendations service trains on these.
func (l *Ledger) UserTrackCounts(ctx context.Context, fn func(userID, trackID string, plays int64) error) error {
	rows, err := l.r.query(ctx, `SELECT user_id, track_id, plays FROM plays_user_track_counts ORDER BY user_id, track_id`)
	if err != nil {
		return fmt.Errorf("plays: ledger: user track counts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u, t string
		var n int64
		if err := rows.Scan(&u, &t, &n); err != nil {
			return fmt.Errorf("plays: ledger: user track counts: %w", err)
		}
		if err := fn(u, t, n); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("plays: ledger: user track counts: %w", err)
	}
	return nil
}

// Prune deletes the play ids of plays older than before. Their counts
// stay; the pipeline refuses plays that old, so none can come back to be
// counted again.
func (l *Ledger) Prune(ctx context.Context, before time.Time) (int64, error) {
	n, err := l.w.exec(ctx, l.rebind(`DELETE FROM plays_play_ids WHERE ts_ms < ?`), before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("plays: ledger: prune: %w", err)
	}
	return n, nil
}

// playIDCount is the number of play ids kept; tests compare it with the
// counts.
func (l *Ledger) playIDCount(ctx context.Context) (int64, error) {
	rows, err := l.r.query(ctx, `SELECT COUNT(*) FROM plays_play_ids`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		err = rows.Scan(&n)
	}
	if err == nil {
		err = rows.Err()
	}
	return n, err
}

// byKey groups counts for the query endpoint.
func byKey(rows []TrackCount, key func(TrackCount) string) []keyCount {
	m := make(map[string]int64)
	for _, r := range rows {
		m[key(r)] += r.Plays
	}
	out := make([]keyCount, 0, len(m))
	for k, n := range m {
		out = append(out, keyCount{Key: k, Plays: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

type keyCount struct {
	Key   string
	Plays int64
}
