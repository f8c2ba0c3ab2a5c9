package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"veil/hub/store"
	"veil/hub/store/storetest"
)

func testRegistryPersists(t *testing.T, open func() *store.DB) {
	ctx := context.Background()
	db := open()
	reg, err := store.NewRegistry(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []store.Party{
		{Name: "tax", Role: "provider", Address: "127.0.0.1:7501", CertSHA: "aa"},
		{Name: "bank-a", Role: "bank", Address: "127.0.0.1:7504", CertSHA: "bb"},
	} {
		if err := reg.PutParty(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Re-adding updates in place.
	if err := reg.PutParty(ctx, store.Party{Name: "tax", Role: "provider", Address: "127.0.0.1:7601", CertSHA: "cc"}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// "Restart": a new connection, migrations run again.
	db = open()
	defer db.Close()
	reg, err = store.NewRegistry(ctx, db)
	if err != nil {
		t.Fatalf("migrations on restart: %v", err)
	}
	got, err := reg.ListParties(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "bank-a" || got[1].Name != "tax" {
		t.Fatalf("after restart: %+v", got)
	}
	if got[1].Address != "127.0.0.1:7601" || got[1].CertSHA != "cc" {
		t.Fatalf("update lost: %+v", got[1])
	}
	if _, err := reg.GetParty(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown party: %v", err)
	}
	if err := reg.DeleteParty(ctx, "tax"); err != nil {
		t.Fatal(err)
	}
	if err := reg.DeleteParty(ctx, "tax"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("double delete: %v", err)
	}
	if err := reg.PutParty(ctx, store.Party{Name: "", Role: "bank"}); err == nil {
		t.Fatal("empty name accepted")
	}
}

func TestRegistryPersistsSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "platform.db")
	testRegistryPersists(t, func() *store.DB {
		db, err := store.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestRegistryPersistsPostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	testRegistryPersists(t, func() *store.DB {
		db, err := store.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestMigrateRefusesDowngrade(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	steps := []string{`CREATE TABLE a (x INTEGER)`, `CREATE TABLE b (y INTEGER)`}
	if err := db.Migrate(ctx, "c", steps); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, "c", steps); err != nil {
		t.Fatalf("second run must be a no-op: %v", err)
	}
	if err := db.Migrate(ctx, "c", steps[:1]); err == nil {
		t.Fatal("older binary accepted a newer schema")
	}
	// A failing step leaves no record, so it is retried next time.
	bad := append(steps, `CREATE TABLE a (x INTEGER)`)
	if err := db.Migrate(ctx, "c", bad); err == nil {
		t.Fatal("failing step succeeded")
	}
	var v int
	db.SQL.QueryRow(`SELECT MAX(version) FROM schema_migrations WHERE component='c'`).Scan(&v)
	if v != 2 {
		t.Fatalf("version after failed step = %d, want 2", v)
	}
}

func TestRebind(t *testing.T) {
	pg := &store.DB{Dialect: store.Postgres}
	if got := pg.Rebind("a = ? AND b = ?"); got != "a = $1 AND b = $2" {
		t.Fatal(got)
	}
	sq := &store.DB{Dialect: store.SQLite}
	if got := sq.Rebind("a = ?"); got != "a = ?" {
		t.Fatal(got)
	}
}
