package audit

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestAppendBatchFuncCommitsWithCallerWrites checks that writes made by the
// build callback commit with the entries, and roll back with them when the
// callback fails or returns the wrong number of entries.
func TestAppendBatchFuncCommitsWithCallerWrites(t *testing.T) {
	db := openSQLite(t)
	ctx := context.Background()
	k := newKeys(t)
	l := openLog(t, db, k, 1000, time.Hour, newClock())
	if _, err := db.SQL.ExecContext(ctx, `CREATE TABLE side (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	side := func() int {
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT COUNT(*) FROM side`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	build := func(n int, fail error) func(context.Context, *sql.Tx) ([]Entry, error) {
		return func(ctx context.Context, tx *sql.Tx) ([]Entry, error) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO side (n) VALUES (1)`); err != nil {
				return nil, err
			}
			out := make([]Entry, n)
			for i := range out {
				out[i] = sampleEntry(i)
			}
			return out, fail
		}
	}
	out, err := l.AppendBatchFunc(ctx, 3, build(3, nil))
	if err != nil || len(out) != 3 || out[2].Seq != 2 || side() != 1 {
		t.Fatalf("append: %v, %d entries, side %d", err, len(out), side())
	}
	if _, err := l.AppendBatchFunc(ctx, 2, build(2, errors.New("boom"))); err == nil {
		t.Fatal("failing build committed")
	}
	if _, err := l.AppendBatchFunc(ctx, 2, build(1, nil)); err == nil {
		t.Fatal("short build committed")
	}
	bad := func(ctx context.Context, tx *sql.Tx) ([]Entry, error) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO side (n) VALUES (1)`); err != nil {
			return nil, err
		}
		return []Entry{{Kind: "Bad Kind", Actor: "x"}}, nil
	}
	if _, err := l.AppendBatchFunc(ctx, 1, bad); err == nil {
		t.Fatal("invalid built entry committed")
	}
	if n, _ := l.Size(ctx); n != 3 || side() != 1 {
		t.Fatalf("failed appends left size %d, side rows %d", n, side())
	}
	fill(t, l, 2)
	r, err := l.VerifyStored(ctx, k.verifier, nil)
	if err != nil || !r.OK() || r.Entries != 5 {
		t.Fatalf("verify: %+v %v", r, err)
	}
}
