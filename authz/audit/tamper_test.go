package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"veil/hub/store"
)

// tamperFixture builds a 100-entry log in a SQLite file with a checkpoint
// every 16 entries, and returns the auditor's saved (latest) checkpoint.
func tamperFixture(t *testing.T) (*Log, *store.DB, keyPair, []byte) {
	t.Helper()
	db := openSQLite(t)
	k := newKeys(t)
	l := openLog(t, db, k, 16, time.Hour, newClock())
	fill(t, l, 100)
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.VerifyStored(context.Background(), k.verifier, cp.Note)
	if err != nil || !r.OK() || !r.SavedConsistent {
		t.Fatalf("untampered log: %+v %v", r, err)
	}
	return l, db, k, cp.Note
}

func exec(t *testing.T, db *store.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.SQL.ExecContext(context.Background(), db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// clientReport verifies as a remote auditor would: entry bytes and
// checkpoint notes only, no stored leaf hashes.
func clientReport(t *testing.T, l *Log, k keyPair, saved []byte) *Report {
	t.Helper()
	ctx := context.Background()
	var entries [][]byte
	if err := l.Entries(ctx, 0, 1<<62, func(e RawEntry) error { entries = append(entries, e.Data); return nil }); err != nil {
		t.Fatal(err)
	}
	cps, err := l.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var notes [][]byte
	for _, cp := range cps {
		notes = append(notes, cp.Note)
	}
	return VerifyLog(k.verifier, entries, notes, saved)
}

func storedReport(t *testing.T, l *Log, k keyPair, saved []byte) *Report {
	t.Helper()
	r, err := l.VerifyStored(context.Background(), k.verifier, saved)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDetectChangedEntry(t *testing.T) {
	l, db, k, saved := tamperFixture(t)
	// Edit the row directly: entry 37 now names another bank. The new body is
	// still canonical JSON with the right seq, so only the hashes can tell.
	exec(t, db, `UPDATE audit_entries SET body = REPLACE(body, '"actor":"bank-b"', '"actor":"bank-z"') WHERE seq = 37`)
	r := storedReport(t, l, k, saved)
	if r.OK() || !hasProblem(r, CheckStoredLeafHash, 37) || !hasProblem(r, CheckCheckpointRoot, 48) || !hasProblem(r, CheckSavedCheckpoint, 99) {
		t.Fatalf("stored report: %+v", r.Problems)
	}
	c := clientReport(t, l, k, saved)
	if c.OK() || !hasProblem(c, CheckCheckpointRoot, 48) {
		t.Fatalf("client report: %+v", c.Problems)
	}
	// The first failing checkpoint bounds the edit to 33..48.
	if !strings.Contains(c.Problems[0].Detail, "positions 33..48") {
		t.Fatalf("location: %s", c.Problems[0])
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "entry 48") {
		t.Fatalf("Err: %v", err)
	}
}

func TestDetectChangedEntryWithForgedLeafHash(t *testing.T) {
	l, db, k, saved := tamperFixture(t)
	// A careful attacker also rewrites the stored leaf hash; the signed
	// checkpoints still catch it.
	exec(t, db, `UPDATE audit_entries SET body = REPLACE(body, '"decision":"deny"', '"decision":"allow"') WHERE seq = 55`)
	var body string
	if err := db.SQL.QueryRow(`SELECT body FROM audit_entries WHERE seq = 55`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	exec(t, db, `UPDATE audit_nodes SET hash = ? WHERE level = 0 AND idx = 55`, hexLeaf([]byte(body)))
	r := storedReport(t, l, k, saved)
	if r.OK() || hasProblem(r, CheckStoredLeafHash, -2) || !hasProblem(r, CheckCheckpointRoot, 64) {
		t.Fatalf("report: %+v", r.Problems)
	}
}

func TestDetectDeletedEntry(t *testing.T) {
	l, db, k, saved := tamperFixture(t)
	exec(t, db, `DELETE FROM audit_entries WHERE seq = 20`)
	for _, r := range []*Report{storedReport(t, l, k, saved), clientReport(t, l, k, saved)} {
		if r.OK() || !hasProblem(r, CheckSequence, 20) || !hasProblem(r, CheckCheckpointRoot, 32) {
			t.Fatalf("report: %+v", r.Problems)
		}
		if !strings.Contains(r.Problems[0].String(), "entry 20 was removed") {
			t.Fatalf("first problem: %s", r.Problems[0])
		}
	}
}

func TestDetectSwappedEntries(t *testing.T) {
	l, db, k, saved := tamperFixture(t)
	var a, b string
	db.SQL.QueryRow(`SELECT body FROM audit_entries WHERE seq = 10`).Scan(&a)
	db.SQL.QueryRow(`SELECT body FROM audit_entries WHERE seq = 11`).Scan(&b)
	exec(t, db, `UPDATE audit_entries SET body = ? WHERE seq = 10`, b)
	exec(t, db, `UPDATE audit_entries SET body = ? WHERE seq = 11`, a)
	for _, r := range []*Report{storedReport(t, l, k, saved), clientReport(t, l, k, saved)} {
		if r.OK() || !hasProblem(r, CheckSequence, 10) || !hasProblem(r, CheckCheckpointRoot, 16) {
			t.Fatalf("report: %+v", r.Problems)
		}
	}
	// Swapping and renumbering seq inside the bodies: still caught by roots.
	exec(t, db, `UPDATE audit_entries SET body = REPLACE(body, '"seq":11', '"seq":10') WHERE seq = 10`)
	exec(t, db, `UPDATE audit_entries SET body = REPLACE(body, '"seq":10', '"seq":11') WHERE seq = 11`)
	r := clientReport(t, l, k, saved)
	if r.OK() || hasProblem(r, CheckSequence, -2) || !hasProblem(r, CheckCheckpointRoot, 16) {
		t.Fatalf("renumbered swap: %+v", r.Problems)
	}
}

func TestDetectRollback(t *testing.T) {
	l, db, k, saved := tamperFixture(t) // auditor saved the checkpoint at 100
	ctx := context.Background()
	// Roll the database back to 80 entries, as restoring an old backup would:
	// entries, nodes, checkpoints and head together.
	exec(t, db, `DELETE FROM audit_entries WHERE seq >= 80`)
	exec(t, db, `DELETE FROM audit_entry_providers WHERE seq >= 80`)
	exec(t, db, `DELETE FROM audit_checkpoints WHERE size > 80`)
	exec(t, db, `DELETE FROM audit_nodes WHERE idx * (1 << level) + (1 << level) > 80`)
	exec(t, db, `UPDATE audit_head SET size = 80`)
	// Without the saved checkpoint the truncated log is self-consistent...
	if r := clientReport(t, l, k, nil); !r.OK() {
		t.Fatalf("rolled-back log without saved checkpoint: %+v", r.Problems)
	}
	// ...with it, the rollback is detected.
	r := clientReport(t, l, k, saved)
	if r.OK() || !hasProblem(r, CheckSavedCheckpoint, -1) || !strings.Contains(r.Problems[0].Detail, "rolled back") {
		t.Fatalf("rollback: %+v", r.Problems)
	}
	// The platform then appends 30 different entries and signs them: the
	// log is longer than the saved checkpoint again, but not consistent.
	l2 := openLog(t, db, k, 16, time.Hour, newClock())
	for i := range 30 {
		e := sampleEntry(i)
		e.Actor = "bank-rewritten"
		if _, err := l2.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	latest, err := l2.Checkpoint(ctx)
	if err != nil || latest.Size != 110 {
		t.Fatalf("%+v %v", latest, err)
	}
	r = clientReport(t, l2, k, saved)
	if r.OK() || !hasProblem(r, CheckSavedCheckpoint, 99) || r.SavedConsistent {
		t.Fatalf("rewrite after rollback: %+v", r.Problems)
	}
	// And the proof-based check sees the same.
	p, err := l2.ConsistencyProof(ctx, 100, 110)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistency(k.verifier, saved, latest.Note, p); err == nil {
		t.Fatal("inconsistent checkpoints passed the consistency proof")
	}
}

func TestDetectTruncatedLogWithOldCheckpoints(t *testing.T) {
	l, db, k, _ := tamperFixture(t)
	// Entries deleted from the end but checkpoints left in place.
	exec(t, db, `DELETE FROM audit_entries WHERE seq >= 90`)
	r := clientReport(t, l, k, nil)
	if r.OK() || !hasProblem(r, CheckCheckpointBeyondLog, -1) {
		t.Fatalf("report: %+v", r.Problems)
	}
}

func TestDetectEditedCheckpoint(t *testing.T) {
	l, db, k, _ := tamperFixture(t)
	exec(t, db, `UPDATE audit_checkpoints SET note = REPLACE(note, ?, ?) WHERE size = 49`, "\n49\n", "\n48\n")
	r := clientReport(t, l, k, nil)
	if r.OK() || !hasProblem(r, CheckCheckpointSignature, -1) {
		t.Fatalf("report: %+v", r.Problems)
	}
}
