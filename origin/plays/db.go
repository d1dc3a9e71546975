package plays

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// The ledger speaks to SQLite through database/sql and to PostgreSQL
// through a pgx connection (pgx's database/sql adapter needs its pool
// package, which this module does not carry). These few interfaces are
// the part of both the ledger uses.
type (
	dbConn interface {
		exec(ctx context.Context, q string, args ...any) (int64, error)
		query(ctx context.Context, q string, args ...any) (dbRows, error)
	}
	dbRows interface {
		Next() bool
		Scan(dest ...any) error
		Err() error
		Close()
	}
	database interface {
		dbConn
		begin(ctx context.Context) (dbTx, error)
		close() error
	}
	dbTx interface {
		dbConn
		commit(ctx context.Context) error
		rollback(ctx context.Context)
	}
)

// sqlDB adapts database/sql. Statements run in a transaction are
// prepared once per connection and kept (SQLite parses nothing again for
// the ledger's fixed set of multi-row statements).
type sqlDB struct {
	db *sql.DB

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// maxStmts bounds the statement cache; the ledger uses a few dozen
// statements, a few more each day (a play-id table per day).
const maxStmts = 256

func (d *sqlDB) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st, ok := d.stmts[q]; ok {
		return st, nil
	}
	if d.stmts == nil || len(d.stmts) >= maxStmts {
		for _, st := range d.stmts {
			st.Close()
		}
		d.stmts = make(map[string]*sql.Stmt)
	}
	st, err := d.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	d.stmts[q] = st
	return st, nil
}

type sqlTx struct {
	tx *sql.Tx
	d  *sqlDB
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }

func (d *sqlDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := d.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (d *sqlDB) query(ctx context.Context, q string, args ...any) (dbRows, error) {
	r, err := d.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (d *sqlDB) begin(ctx context.Context) (dbTx, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return sqlTx{tx, d}, nil
}

func (d *sqlDB) close() error {
	d.mu.Lock()
	for _, st := range d.stmts {
		st.Close()
	}
	d.stmts = nil
	d.mu.Unlock()
	return d.db.Close()
}

func (t sqlTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	st, err := t.d.prepared(ctx, q)
	if err != nil {
		return 0, err
	}
	res, err := t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t sqlTx) query(ctx context.Context, q string, args ...any) (dbRows, error) {
	st, err := t.d.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	r, err := t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (t sqlTx) commit(context.Context) error { return t.tx.Commit() }
func (t sqlTx) rollback(context.Context)     { t.tx.Rollback() }

// pgDB is one PostgreSQL connection used by one caller at a time, and
// reconnected when it breaks. The ledger opens two: one for the sink's
// writes, one for queries.
type pgDB struct {
	dsn string

	mu sync.Mutex // held from acquire to release: a pgx.Conn is not concurrency safe
	c  *pgx.Conn
}

func (d *pgDB) acquire(ctx context.Context) (*pgx.Conn, error) {
	d.mu.Lock()
	if d.c != nil && !d.c.IsClosed() {
		return d.c, nil
	}
	c, err := pgx.Connect(ctx, d.dsn)
	if err != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("connect: %w", err)
	}
	d.c = c
	return c, nil
}

func (d *pgDB) release() { d.mu.Unlock() }

func (d *pgDB) exec(ctx context.Context, q string, args ...any) (int64, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer d.release()
	tag, err := c.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (d *pgDB) query(ctx context.Context, q string, args ...any) (dbRows, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Query(ctx, q, args...)
	if err != nil {
		d.release()
		return nil, err
	}
	return &pgRows{Rows: r, release: d.release}, nil
}

func (d *pgDB) begin(ctx context.Context) (dbTx, error) {
	c, err := d.acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		d.release()
		return nil, err
	}
	return &pgTx{tx: tx, release: d.release}, nil
}

func (d *pgDB) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return nil
	}
	err := d.c.Close(context.Background())
	d.c = nil
	return err
}

type pgRows struct {
	pgx.Rows
	release func()
	once    sync.Once
}

func (r *pgRows) Close() { r.Rows.Close(); r.once.Do(r.release) }

type pgTx struct {
	tx      pgx.Tx
	release func()
	once    sync.Once
	done    bool // committed or rolled back: the connection may be someone else's now
}

func (t *pgTx) exec(ctx context.Context, q string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// query's rows must be closed before the next statement of the
// transaction; they do not release the connection, the transaction does.
func (t *pgTx) query(ctx context.Context, q string, args ...any) (dbRows, error) {
	r, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return &pgRows{Rows: r, release: func() {}}, nil
}

func (t *pgTx) commit(ctx context.Context) error {
	defer t.once.Do(t.release)
	t.done = true
	return t.tx.Commit(ctx)
}

func (t *pgTx) rollback(ctx context.Context) {
	if t.done {
		return
	}
	t.done = true
	defer t.once.Do(t.release)
	t.tx.Rollback(ctx)
}
