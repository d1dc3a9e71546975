package plays

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Ledger is the royalty ledger: the play ids counted so far, the
// qualifying plays per (track, country, day) and per (user, track), and the
// royalties-topic offsets consumed, all changed together in one database
// transaction per batch so that a crash at any point leaves them agreeing.
// It is SQLite (WAL mode) on one machine and PostgreSQL past one.
//
// Play ids are kept for deduplication in one append-only table per UTC day
// of the id's issue time (plays_ids_YYYYMMDD: the primary key and nothing
// else), so pruning drops whole tables instead of deleting rows. That
// needs server-issued, time-ordered play ids (see playIDTime); any other id
// goes to plays_play_ids with its play's time, pruned by row.
//
// On SQLite the counts of a batch are not upserted in its transaction:
// the transaction appends them, summed, as one row of plays_deltas, and
// fold adds the pending deltas to the count tables every few seconds (and
// before any read of the counts), summing the many batches in memory first.
// Appending and folding are each one transaction, so a crash loses or
// doubles nothing. On PostgreSQL the batch is COPYed into a temporary
// table and one statement inserts the new ids, upserts both counts and
// writes the offsets.
type Ledger struct {
	w  database // the sink's writes
	r  database // queries; the same as w for SQLite
	pg bool

	foldMu sync.Mutex // one fold at a time in this process

	daysMu sync.Mutex
	days   map[string]bool // dated play-id tables known to exist
}

// insert chunk sizes: well under SQLite's and PostgreSQL's bound-parameter
// limits (32766 and 65535). Multi-row statements are prepared once per
// size, so a batch is cut into chunks of these sizes only.
var chunkSizes = []int{256, 64, 16, 4, 1}

const (
	idChunk    = 256
	countChunk = 256
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
	q.Add("_pragma", "cache_size(-65536)") // 64 MiB of pages: the current day's id index stays in memory
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(4)
	d := &sqlDB{db: db}
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
	l := &Ledger{w: w, r: r, pg: pg, days: make(map[string]bool)}
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
	blob := "BLOB"
	if l.pg {
		clustered, blob = "", "BYTEA"
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
		`CREATE TABLE IF NOT EXISTS plays_consumed (
			topic   TEXT NOT NULL,
			part    INTEGER NOT NULL,
			records BIGINT NOT NULL,
			PRIMARY KEY (topic, part))`,
		`CREATE TABLE IF NOT EXISTS plays_deltas (
			seq  INTEGER PRIMARY KEY,
			data ` + blob + ` NOT NULL)`,
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
	m, err := queryMap[int32](ctx, l.w, l.rebind(`SELECT part, next_offset FROM plays_offsets WHERE topic = ?`), topic)
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: offsets: %w", err)
	}
	return m, nil
}

// applyResult is what one batch changed.
type applyResult struct {
	counted    int
	duplicates int
}

// apply is applyBatch with no records-read count.
func (l *Ledger) apply(ctx context.Context, topic string, batch []royalty, next map[int32]int64) (applyResult, error) {
	return l.applyBatch(ctx, topic, batch, next, nil)
}

// legacyIDTable holds play ids that carry no issue time, with their
// play's time for pruning.
const legacyIDTable = "plays_play_ids"

// idTable is the table that deduplicates r's play id.
func idTable(r *royalty) string {
	t, ok := playIDTime(r.PlayID)
	if !ok {
		return legacyIDTable
	}
	return dayTable(t)
}

func dayTable(t time.Time) string {
	var b [len("plays_ids_20060102")]byte
	return string(t.UTC().AppendFormat(append(b[:0], "plays_ids_"...), "20060102"))
}

// ensureDayTables creates the dated play-id tables of tables not known
// to exist yet.
func (l *Ledger) ensureDayTables(ctx context.Context, tables []string) error {
	for _, t := range tables {
		if t == legacyIDTable {
			continue
		}
		l.daysMu.Lock()
		known := l.days[t]
		l.daysMu.Unlock()
		if known {
			continue
		}
		ddl := `CREATE TABLE IF NOT EXISTS ` + t + ` (play_id BLOB PRIMARY KEY) WITHOUT ROWID`
		if l.pg {
			ddl = `CREATE TABLE IF NOT EXISTS ` + t + ` (play_id BYTEA PRIMARY KEY)`
		}
		if _, err := l.w.exec(ctx, ddl); err != nil {
			return fmt.Errorf("plays: ledger: create %s: %w", t, err)
		}
		l.daysMu.Lock()
		l.days[t] = true
		l.daysMu.Unlock()
	}
	return nil
}

// apply writes one batch in one transaction: the play ids not seen before,
// the counts of those new plays only, next, the offset after the last
// record of the batch for each partition (never moved backwards), and
// adds seen, the records read per partition, to plays_consumed. A sink
// that honours its stored offsets reads each committed record once, so
// plays_consumed totals the topic's committed records; anything more is a
// record applied twice (the fault test checks it).
func (l *Ledger) applyBatch(ctx context.Context, topic string, batch []royalty, next, seen map[int32]int64) (applyResult, error) {
	var res applyResult
	// Duplicates inside the batch are dropped first, so each statement
	// sees each play id at most once; then the ids are grouped by table.
	ids := make(map[string]struct{}, len(batch))
	byTable := make(map[string][]*royalty)
	var tables []string
	for i := range batch {
		r := &batch[i]
		if _, dup := ids[r.PlayID]; dup {
			res.duplicates++
			continue
		}
		ids[r.PlayID] = struct{}{}
		t := idTable(r)
		if _, ok := byTable[t]; !ok {
			tables = append(tables, t)
		}
		byTable[t] = append(byTable[t], r)
	}
	sort.Strings(tables)
	if err := l.ensureDayTables(ctx, tables); err != nil {
		return res, err
	}
	var err error
	if l.pg {
		err = l.applyPG(ctx, topic, tables, byTable, next, seen, &res)
	} else {
		err = l.applySQLite(ctx, topic, tables, byTable, next, seen, &res)
	}
	return res, err
}

func (l *Ledger) applySQLite(ctx context.Context, topic string, tables []string, byTable map[string][]*royalty, next, seen map[int32]int64, res *applyResult) error {
	tx, err := l.w.begin(ctx)
	if err != nil {
		return fmt.Errorf("plays: ledger: begin: %w", err)
	}
	defer tx.rollback(ctx)

	var d deltas
	var q strings.Builder
	args := make([]any, 0, 2*idChunk)
	for _, t := range tables {
		rs := byTable[t]
		legacy := t == legacyIDTable
		fresh := make(map[string]struct{}, len(rs))
		for start := 0; start < len(rs); {
			n := chunkFor(len(rs) - start)
			chunk := rs[start : start+n]
			start += n
			q.Reset()
			args = args[:0]
			q.WriteString(`INSERT INTO ` + t)
			if legacy {
				q.WriteString(` (play_id, ts_ms) VALUES `)
			} else {
				q.WriteString(` (play_id) VALUES `)
			}
			for i, r := range chunk {
				if i > 0 {
					q.WriteByte(',')
				}
				if legacy {
					q.WriteString("(?,?)")
					args = append(args, r.PlayID, r.TSMS)
				} else {
					q.WriteString("(?)")
					args = append(args, playIDKey(r.PlayID))
				}
			}
			q.WriteString(` ON CONFLICT (play_id) DO NOTHING RETURNING play_id`)
			rows, err := tx.query(ctx, q.String(), args...)
			if err != nil {
				return fmt.Errorf("plays: ledger: insert play ids: %w", err)
			}
			for rows.Next() {
				var id []byte // the text id, or a dated table's binary key
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("plays: ledger: insert play ids: %w", err)
				}
				fresh[string(id)] = struct{}{}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("plays: ledger: insert play ids: %w", err)
			}
		}
		for _, r := range rs {
			k := r.PlayID
			if !legacy {
				k = string(playIDKey(r.PlayID))
			}
			if _, ok := fresh[k]; ok {
				d.add(r)
				res.counted++
			} else {
				res.duplicates++
			}
		}
	}
	if res.counted > 0 {
		if _, err := tx.exec(ctx, `INSERT INTO plays_deltas (data) VALUES (?)`, d.encode()); err != nil {
			return fmt.Errorf("plays: ledger: append deltas: %w", err)
		}
	}
	for p, o := range next {
		if _, err := tx.exec(ctx, `INSERT INTO plays_offsets (topic, part, next_offset) VALUES (?,?,?)
			ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset WHERE plays_offsets.next_offset < excluded.next_offset`,
			topic, p, o); err != nil {
			return fmt.Errorf("plays: ledger: offsets: %w", err)
		}
	}
	for p, n := range seen {
		if _, err := tx.exec(ctx, `INSERT INTO plays_consumed (topic, part, records) VALUES (?,?,?)
			ON CONFLICT (topic, part) DO UPDATE SET records = plays_consumed.records + excluded.records`, topic, p, n); err != nil {
			return fmt.Errorf("plays: ledger: consumed: %w", err)
		}
	}
	if err := tx.commit(ctx); err != nil {
		return fmt.Errorf("plays: ledger: commit: %w", err)
	}
	return nil
}

// chunkFor is the largest prepared chunk size not above n.
func chunkFor(n int) int {
	for _, c := range chunkSizes {
		if c <= n {
			return c
		}
	}
	return 1
}

// applyPG copies the batch into a temporary table and runs one statement
// that inserts the new play ids into their tables, upserts the counts of
// those only, and moves the offsets.
func (l *Ledger) applyPG(ctx context.Context, topic string, tables []string, byTable map[string][]*royalty, next, seen map[int32]int64, res *applyResult) error {
	tx, err := l.w.begin(ctx)
	if err != nil {
		return fmt.Errorf("plays: ledger: begin: %w", err)
	}
	defer tx.rollback(ctx)
	ptx := tx.(*pgTx).tx
	if _, err := ptx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS plays_batch (
		tbl TEXT, id BYTEA, play_id TEXT, user_id TEXT, track_id TEXT, country TEXT, day TEXT, ts_ms BIGINT) ON COMMIT DELETE ROWS`); err != nil {
		return fmt.Errorf("plays: ledger: temp table: %w", err)
	}
	total := 0
	for _, t := range tables {
		total += len(byTable[t])
	}
	rows := make([][]any, 0, total)
	for _, t := range tables {
		for _, r := range byTable[t] {
			id := []byte(r.PlayID)
			if t != legacyIDTable {
				id = playIDKey(r.PlayID)
			}
			rows = append(rows, []any{t, id, r.PlayID, r.UserID, r.TrackID, r.Country, r.day(), r.TSMS})
		}
	}
	if _, err := ptx.CopyFrom(ctx, pgx.Identifier{"plays_batch"},
		[]string{"tbl", "id", "play_id", "user_id", "track_id", "country", "day", "ts_ms"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("plays: ledger: copy batch: %w", err)
	}
	var q strings.Builder
	q.WriteString(`WITH `)
	for i, t := range tables {
		// A dated table keeps the binary key (id); the undated one the
		// text, returned as its bytes so both join back on (tbl, id).
		cols, vals, ret := `play_id`, `id`, `play_id`
		if t == legacyIDTable {
			cols, vals, ret = `play_id, ts_ms`, `play_id, ts_ms`, `convert_to(play_id, 'UTF8')`
		}
		fmt.Fprintf(&q, `n%d AS (INSERT INTO %s (%s) SELECT %s FROM plays_batch WHERE tbl = '%s' ON CONFLICT (play_id) DO NOTHING RETURNING '%s'::text AS tbl, %s AS id), `,
			i, t, cols, vals, t, t, ret)
	}
	q.WriteString(`fresh AS (`)
	for i := range tables {
		if i > 0 {
			q.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&q, `SELECT tbl, id FROM n%d`, i)
	}
	q.WriteString(`), b AS (SELECT plays_batch.* FROM plays_batch JOIN fresh USING (tbl, id)),
	tc AS (INSERT INTO plays_track_counts (track_id, country, day, plays)
		SELECT track_id, country, day, count(*) FROM b GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
		ON CONFLICT (track_id, country, day) DO UPDATE SET plays = plays_track_counts.plays + excluded.plays),
	ut AS (INSERT INTO plays_user_track_counts (user_id, track_id, plays)
		SELECT user_id, track_id, count(*) FROM b GROUP BY 1, 2 ORDER BY 1, 2
		ON CONFLICT (user_id, track_id) DO UPDATE SET plays = plays_user_track_counts.plays + excluded.plays),
	off AS (INSERT INTO plays_offsets (topic, part, next_offset)
		SELECT $1, p, o FROM unnest($2::int[], $3::bigint[]) AS x(p, o)
		ON CONFLICT (topic, part) DO UPDATE SET next_offset = excluded.next_offset WHERE plays_offsets.next_offset < excluded.next_offset),
	cons AS (INSERT INTO plays_consumed (topic, part, records)
		SELECT $1, p, n FROM unnest($4::int[], $5::bigint[]) AS x(p, n)
		ON CONFLICT (topic, part) DO UPDATE SET records = plays_consumed.records + excluded.records)
	SELECT count(*) FROM fresh`)
	parts := make([]int32, 0, len(next))
	offs := make([]int64, 0, len(next))
	for p, o := range next {
		parts = append(parts, p)
		offs = append(offs, o)
	}
	sparts := make([]int32, 0, len(seen))
	sn := make([]int64, 0, len(seen))
	for p, n := range seen {
		sparts = append(sparts, p)
		sn = append(sn, n)
	}
	var fresh int64
	if err := ptx.QueryRow(ctx, q.String(), topic, parts, offs, sparts, sn).Scan(&fresh); err != nil {
		return fmt.Errorf("plays: ledger: apply: %w", err)
	}
	if err := tx.commit(ctx); err != nil {
		return fmt.Errorf("plays: ledger: commit: %w", err)
	}
	res.counted = int(fresh)
	res.duplicates += total - int(fresh)
	return nil
}

// deltas are a batch's new plays summed per (track, country, day) and
// per (user, track).
type deltas struct {
	tc map[tcKey]int64
	ut map[utKey]int64
}

type tcKey struct{ track, country, day string }
type utKey struct{ user, track string }

func (d *deltas) add(r *royalty) {
	if d.tc == nil {
		d.tc, d.ut = make(map[tcKey]int64), make(map[utKey]int64)
	}
	d.tc[tcKey{r.TrackID, r.Country, r.day()}]++
	d.ut[utKey{r.UserID, r.TrackID}]++
}

// encode is plays_deltas.data: lines "t\ttrack\tcountry\tday\tn" and
// "u\tuser\ttrack\tn" (no field can hold a tab or a newline).
func (d *deltas) encode() []byte {
	b := make([]byte, 0, 32*(len(d.tc)+len(d.ut)))
	for k, n := range d.tc {
		b = append(appendTabbed(b, n, "t", k.track, k.country, k.day), '\n')
	}
	for k, n := range d.ut {
		b = append(appendTabbed(b, n, "u", k.user, k.track), '\n')
	}
	return b
}

// decode adds an encoded deltas row to d.
func (d *deltas) decode(b []byte) error {
	if d.tc == nil {
		d.tc, d.ut = make(map[tcKey]int64), make(map[utKey]int64)
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		f := strings.Split(string(line), "\t")
		switch {
		case len(f) == 5 && f[0] == "t":
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return fmt.Errorf("bad deltas line %q", line)
			}
			d.tc[tcKey{f[1], f[2], f[3]}] += n
		case len(f) == 4 && f[0] == "u":
			n, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return fmt.Errorf("bad deltas line %q", line)
			}
			d.ut[utKey{f[1], f[2]}] += n
		default:
			return fmt.Errorf("bad deltas line %q", line)
		}
	}
	return nil
}

// fold adds every pending plays_deltas row to the count tables and
// deletes them, in one transaction. The sink calls it every few seconds;
// the readers of counts call it first, so they see every committed play.
// It is a no-op on PostgreSQL, whose batches upsert the counts directly.
func (l *Ledger) fold(ctx context.Context) (int, error) {
	if l.pg {
		return 0, nil
	}
	l.foldMu.Lock()
	defer l.foldMu.Unlock()
	tx, err := l.w.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("plays: ledger: fold: %w", err)
	}
	defer tx.rollback(ctx)
	rows, err := tx.query(ctx, `SELECT seq, data FROM plays_deltas ORDER BY seq`)
	if err != nil {
		return 0, fmt.Errorf("plays: ledger: fold: %w", err)
	}
	var d deltas
	var last int64
	n := 0
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&last, &data); err != nil {
			rows.Close()
			return 0, fmt.Errorf("plays: ledger: fold: %w", err)
		}
		if err := d.decode(data); err != nil {
			rows.Close()
			return 0, fmt.Errorf("plays: ledger: fold: row %d: %w", last, err)
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("plays: ledger: fold: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	tcRows := make([][]any, 0, len(d.tc))
	for k, c := range d.tc {
		tcRows = append(tcRows, []any{k.track, k.country, k.day, c})
	}
	if err := l.upsert(ctx, tx, `INSERT INTO plays_track_counts (track_id, country, day, plays) VALUES `,
		`(?,?,?,?)`, ` ON CONFLICT (track_id, country, day) DO UPDATE SET plays = plays_track_counts.plays + excluded.plays`, tcRows); err != nil {
		return 0, err
	}
	utRows := make([][]any, 0, len(d.ut))
	for k, c := range d.ut {
		utRows = append(utRows, []any{k.user, k.track, c})
	}
	if err := l.upsert(ctx, tx, `INSERT INTO plays_user_track_counts (user_id, track_id, plays) VALUES `,
		`(?,?,?)`, ` ON CONFLICT (user_id, track_id) DO UPDATE SET plays = plays_user_track_counts.plays + excluded.plays`, utRows); err != nil {
		return 0, err
	}
	if _, err := tx.exec(ctx, `DELETE FROM plays_deltas WHERE seq <= ?`, last); err != nil {
		return 0, fmt.Errorf("plays: ledger: fold: %w", err)
	}
	if err := tx.commit(ctx); err != nil {
		return 0, fmt.Errorf("plays: ledger: fold: commit: %w", err)
	}
	return n, nil
}

// upsert runs head + tuple,tuple,... + tail over rows in prepared chunks.
func (l *Ledger) upsert(ctx context.Context, tx dbTx, head, tuple, tail string, rows [][]any) error {
	var q strings.Builder
	var args []any
	for start := 0; start < len(rows); {
		n := chunkFor(len(rows) - start)
		chunk := rows[start : start+n]
		start += n
		q.Reset()
		args = args[:0]
		q.WriteString(head)
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
	if _, err := l.fold(ctx); err != nil {
		return 0, nil, err
	}
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
	if _, err := l.fold(ctx); err != nil {
		return nil, err
	}
	m, err := queryMap[string](ctx, l.r, `SELECT track_id, CAST(SUM(plays) AS BIGINT) FROM plays_track_counts GROUP BY track_id`)
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: totals: %w", err)
	}
	return m, nil
}

// UserTrackCounts calls fn for every (user, track) with its qualifying
// play count, in (user, track) order; it stops at fn's first error and
// returns it. The recommendations service trains on these.
func (l *Ledger) UserTrackCounts(ctx context.Context, fn func(userID, trackID string, plays int64) error) error {
	if _, err := l.fold(ctx); err != nil {
		return err
	}
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

// Prune forgets the play ids of plays older than before: it drops every
// dated play-id table whose day ended a day or more before before (the
// margin covers a sink that judged a play's age a little earlier), and
// deletes the undated ids older than before. It returns the ids removed.
// Counts stay; the pipeline refuses plays that old, so none can come back
// to be counted again.
func (l *Ledger) Prune(ctx context.Context, before time.Time) (int64, error) {
	n, err := l.w.exec(ctx, l.rebind(`DELETE FROM plays_play_ids WHERE ts_ms < ?`), before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("plays: ledger: prune: %w", err)
	}
	tables, err := l.dayTables(ctx)
	if err != nil {
		return n, err
	}
	cut := dayTable(before.Add(-48 * time.Hour)) // tables <= cut ended at least 24h before before
	for _, t := range tables {
		if t > cut {
			continue
		}
		c, err := l.count(ctx, l.w, t)
		if err != nil {
			return n, err
		}
		if _, err := l.w.exec(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return n, fmt.Errorf("plays: ledger: prune %s: %w", t, err)
		}
		l.daysMu.Lock()
		delete(l.days, t)
		l.daysMu.Unlock()
		n += c
	}
	return n, nil
}

// dayTables lists the dated play-id tables, oldest first.
func (l *Ledger) dayTables(ctx context.Context) ([]string, error) {
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'plays\_ids\_%' ESCAPE '\'`
	if l.pg {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'plays\_ids\_%'`
	}
	rows, err := l.w.query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("plays: ledger: list id tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("plays: ledger: list id tables: %w", err)
		}
		if len(t) == len("plays_ids_20060102") {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out, rows.Err()
}

func (l *Ledger) count(ctx context.Context, db dbConn, table string) (int64, error) {
	return queryInt64(ctx, db, `SELECT COUNT(*) FROM `+table)
}

// queryMap runs a query whose rows are (key, integer) and returns them as
// a map.
func queryMap[K comparable](ctx context.Context, db dbConn, q string, args ...any) (map[K]int64, error) {
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[K]int64)
	for rows.Next() {
		var k K
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		m[k] = n
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// queryInt64 runs a query whose answer is one integer.
func queryInt64(ctx context.Context, db dbConn, q string, args ...any) (int64, error) {
	rows, err := db.query(ctx, q, args...)
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

// consumed returns the records of topic the sink has applied, in all.
func (l *Ledger) consumed(ctx context.Context, topic string) (int64, error) {
	return queryInt64(ctx, l.r, l.rebind(`SELECT CAST(COALESCE(SUM(records), 0) AS BIGINT) FROM plays_consumed WHERE topic = ?`), topic)
}

// PlayIDs is the number of play ids kept for deduplication; tests and
// playsbench compare it with the counts.
func (l *Ledger) PlayIDs(ctx context.Context) (int64, error) { return l.playIDCount(ctx) }

func (l *Ledger) playIDCount(ctx context.Context) (int64, error) {
	n, err := l.count(ctx, l.r, legacyIDTable)
	if err != nil {
		return 0, err
	}
	tables, err := l.dayTables(ctx)
	if err != nil {
		return 0, err
	}
	for _, t := range tables {
		c, err := l.count(ctx, l.r, t)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
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
