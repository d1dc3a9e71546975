package plays

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ledgerOpener opens the same ledger again (a restart) each time it is
// called.
type ledgerOpener func(t testing.TB) *Ledger

var pgSchemaSeq atomic.Int64

// forEachLedger runs f against a fresh SQLite ledger and a fresh PostgreSQL
// ledger. PostgreSQL's DSN comes from PLAYS_TEST_PG_DSN (see
// scripts/pg-test.sh); without it the variant is skipped, unless CI is set,
// where a skipped database would hide a failure.
func forEachLedger(t *testing.T, f func(t *testing.T, open ledgerOpener)) {
	for _, db := range []struct {
		name  string
		fresh func(testing.TB) string // the path or DSN of a fresh ledger
		open  func(context.Context, string) (*Ledger, error)
	}{
		{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "ledger.db") }, OpenSQLite},
		{"postgres", pgTestDSN, OpenPostgres},
	} {
		t.Run(db.name, func(t *testing.T) {
			where := db.fresh(t)
			f(t, func(t testing.TB) *Ledger {
				l, err := db.open(context.Background(), where)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			})
		})
	}
}

// pgTestDSN returns a DSN whose search_path is a new, empty schema, so
// tests never see each other's tables.
func pgTestDSN(t testing.TB) string {
	base := os.Getenv("PLAYS_TEST_PG_DSN")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PLAYS_TEST_PG_DSN is unset in CI: start PostgreSQL with scripts/pg-test.sh")
		}
		t.Skip("PLAYS_TEST_PG_DSN unset; run under scripts/pg-test.sh to test PostgreSQL")
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect %s: %v", base, err)
	}
	defer c.Close(ctx)
	schema := fmt.Sprintf("plays_test_%d_%d", os.Getpid(), pgSchemaSeq.Add(1))
	if _, err := c.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err == nil {
			c.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			c.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

func roy(play, user, track, cc string, ts time.Time) royalty {
	return royalty{V: 1, PlayID: play, UserID: user, TrackID: track, Country: cc, TSMS: ts.UnixMilli()}
}

func TestLedgerApply(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open ledgerOpener) {
		ctx := context.Background()
		l := open(t)
		d1 := time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC)
		d2 := time.Date(2026, 11, 26, 0, 1, 0, 0, time.UTC)
		res, err := l.apply(ctx, RoyaltiesTopic, []royalty{
			roy("a", "u1", "t1", "SE", d1),
			roy("b", "u1", "t1", "SE", d2),
			roy("c", "u2", "t1", "NO", d2),
			roy("a", "u1", "t1", "SE", d1), // in-batch duplicate
		}, map[int32]int64{0: 10, 1: 5})
		if err != nil {
			t.Fatal(err)
		}
		if res.counted != 3 || res.duplicates != 1 {
			t.Errorf("apply = %+v, want 3 counted 1 duplicate", res)
		}
		// A redelivery of the same plays plus one new one, with an
		// older offset for partition 1 (a stale consumer): counts only
		// the new play, offsets never go back.
		res, err = l.apply(ctx, RoyaltiesTopic, []royalty{
			roy("b", "u1", "t1", "SE", d2),
			roy("c", "u2", "t1", "NO", d2),
			roy("d", "u1", "t2", "SE", d2),
		}, map[int32]int64{0: 12, 1: 3})
		if err != nil {
			t.Fatal(err)
		}
		if res.counted != 1 || res.duplicates != 2 {
			t.Errorf("second apply = %+v, want 1 counted 2 duplicates", res)
		}

		l.Close()
		l = open(t) // counts and offsets survive a restart
		offs, err := l.Offsets(ctx, RoyaltiesTopic)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(offs) != "map[0:12 1:5]" {
			t.Errorf("Offsets = %v, want map[0:12 1:5]", offs)
		}
		total, rows, err := l.TrackPlays(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		want := []TrackCount{{"2026-11-25", "SE", 1}, {"2026-11-26", "NO", 1}, {"2026-11-26", "SE", 1}}
		if total != 3 || fmt.Sprint(rows) != fmt.Sprint(want) {
			t.Errorf("TrackPlays(t1) = %d %v, want 3 %v", total, rows, want)
		}
		totals, err := l.TotalPlays(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(totals) != "map[t1:3 t2:1]" {
			t.Errorf("TotalPlays = %v, want map[t1:3 t2:1]", totals)
		}
		var ut []string
		if err := l.UserTrackCounts(ctx, func(u, tr string, n int64) error {
			ut = append(ut, fmt.Sprintf("%s/%s=%d", u, tr, n))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ut, " "); got != "u1/t1=2 u1/t2=1 u2/t1=1" {
			t.Errorf("UserTrackCounts = %q, want %q", got, "u1/t1=2 u1/t2=1 u2/t1=1")
		}

		n, err := l.Prune(ctx, d2)
		if err != nil || n != 1 {
			t.Errorf("Prune(d2) = %d, %v, want 1 (play a)", n, err)
		}
		if c, _ := l.playIDCount(ctx); c != 3 {
			t.Errorf("play ids after prune = %d, want 3", c)
		}
		if total, _, _ := l.TrackPlays(ctx, "t1"); total != 3 {
			t.Errorf("TrackPlays(t1) after prune = %d, want 3 (counts stay)", total)
		}
	})
}

// TestLedgerLargeBatch crosses the insert chunk boundaries.
func TestLedgerLargeBatch(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open ledgerOpener) {
		ctx := context.Background()
		l := open(t)
		ts := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
		var batch []royalty
		for i := range 2*idChunk + 7 {
			batch = append(batch, roy(fmt.Sprintf("p%d", i), fmt.Sprintf("u%d", i%700), fmt.Sprintf("t%d", i%3), "SE", ts))
		}
		res, err := l.apply(ctx, RoyaltiesTopic, batch, map[int32]int64{0: int64(len(batch))})
		if err != nil {
			t.Fatal(err)
		}
		if res.counted != len(batch) || res.duplicates != 0 {
			t.Errorf("apply = %+v, want %d counted", res, len(batch))
		}
		res, err = l.apply(ctx, RoyaltiesTopic, batch, map[int32]int64{0: int64(2 * len(batch))})
		if err != nil {
			t.Fatal(err)
		}
		if res.counted != 0 || res.duplicates != len(batch) {
			t.Errorf("reapply = %+v, want all %d duplicates", res, len(batch))
		}
		totals, _ := l.TotalPlays(ctx)
		if totals["t0"]+totals["t1"]+totals["t2"] != int64(len(batch)) {
			t.Errorf("TotalPlays = %v, want %d in all", totals, len(batch))
		}
	})
}

// TestLedgerDayTables checks that time-ordered play ids are deduplicated in
// one table per issue day, across batches and restarts, and that pruning
// drops whole days (with a day of margin) while counts stay.
// Mutation tried and caught: filing an id under its play's day instead of
// its id's (the resend with another ts is counted twice).
func TestLedgerDayTables(t *testing.T) {
	forEachLedger(t, func(t *testing.T, open ledgerOpener) {
		ctx := context.Background()
		l := open(t)
		day := func(d int) time.Time { return time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC) }
		id := func(d int, n uint64) string { return string(appendPlayID(nil, day(d), 0, n)) }
		batch := []royalty{
			roy(id(20, 1), "u1", "t1", "SE", day(20)),
			roy(id(21, 2), "u1", "t1", "SE", day(21)),
			roy(id(25, 3), "u2", "t1", "SE", day(25)),
			roy("legacy-1", "u2", "t1", "SE", day(25)),
		}
		if res, err := l.apply(ctx, RoyaltiesTopic, batch, map[int32]int64{0: 4}); err != nil || res.counted != 4 {
			t.Fatalf("apply = %+v, %v; want 4 counted", res, err)
		}
		l.Close()
		l = open(t)
		// The same ids again, one with a play time on another day: all
		// duplicates.
		again := append([]royalty(nil), batch...)
		again[0].TSMS = day(22).UnixMilli()
		if res, err := l.apply(ctx, RoyaltiesTopic, again, map[int32]int64{0: 8}); err != nil || res.counted != 0 || res.duplicates != 4 {
			t.Fatalf("re-apply = %+v, %v; want 4 duplicates", res, err)
		}
		tables, err := l.dayTables(ctx)
		if err != nil || strings.Join(tables, " ") != "plays_ids_20261120 plays_ids_20261121 plays_ids_20261125" {
			t.Fatalf("day tables = %v, %v", tables, err)
		}
		// Prune before Nov 22 12:00: Nov 20 ended more than a day
		// before, Nov 21 did not.
		n, err := l.Prune(ctx, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
		if err != nil || n != 1 {
			t.Errorf("Prune = %d, %v; want 1 id (Nov 20)", n, err)
		}
		if tables, _ := l.dayTables(ctx); strings.Join(tables, " ") != "plays_ids_20261121 plays_ids_20261125" {
			t.Errorf("day tables after prune = %v", tables)
		}
		if total, _, _ := l.TrackPlays(ctx, "t1"); total != 4 {
			t.Errorf("TrackPlays(t1) after prune = %d, want 4 (counts stay)", total)
		}
	})
}
