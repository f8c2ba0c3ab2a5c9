package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"veil/hub/store"
	"veil/hub/store/storetest"
)

const origin = "veil.test/audit"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type keyPair struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKeys(t testing.TB) keyPair {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewNoteSigner(origin, priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewNoteVerifier(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{s, v}
}

func openSQLite(t testing.TB) *store.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "platform.db")
	db, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testDBs opens a fresh database per backend inside each subtest: a SQLite
// file, and a fresh PostgreSQL schema (storetest.PostgresDSN skips that
// subtest when no server is reachable outside CI), so each test runs on both.
var testDBs = map[string]func(t *testing.T) *store.DB{
	"sqlite": func(t *testing.T) *store.DB {
		db := openSQLite(t)
		return db
	},
	"postgres": func(t *testing.T) *store.DB {
		db, err := store.OpenPostgres(context.Background(), storetest.PostgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	},
}

func openLog(t testing.TB, db *store.DB, k keyPair, every uint64, interval time.Duration, c *clock) *Log {
	t.Helper()
	l, err := Open(context.Background(), db, Config{Signer: k.signer, CheckpointEvery: every, CheckpointInterval: interval, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var subjects = []string{"91110000MA01ABCD2X", "91310000MA1FL0000Q", "91440300MA5XXXXX0Y"}

func sampleEntry(i int) Entry {
	e := Entry{
		Kind:     KindRequestAllowed,
		Actor:    []string{"bank-a", "bank-b"}[i%2],
		Subject:  subjects[i%3],
		Scopes:   []string{"verify:tax.annual_tax_paid"},
		Purpose:  "loan-application",
		Decision: Allow,
		GrantID:  fmt.Sprintf("g-%d", i),
		JobID:    fmt.Sprintf("job-%d", i),
	}
	if i%4 == 0 {
		e.Providers = []string{"tax", "social"}
	} else {
		e.Providers = []string{"tax"}
	}
	if i%5 == 0 {
		e.Kind, e.Decision, e.Reason = KindRequestDenied, Deny, "expired"
	}
	return e
}

func fill(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), sampleEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func hasProblem(r *Report, check string, index int64) bool {
	for _, p := range r.Problems {
		if p.Check == check && (index == -2 || p.Index == index) {
			return true
		}
	}
	return false
}

func hexLeaf(data []byte) string { return hex.EncodeToString(hasher.HashLeaf(data)) }
