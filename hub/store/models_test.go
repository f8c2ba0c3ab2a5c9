package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"veil/hub/store"
	"veil/hub/store/storetest"
)

func testModelsPersist(t *testing.T, open func() *store.DB) {
	ctx := context.Background()
	db := open()
	ms, err := store.NewModels(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := ms.Reserve(ctx, "default", "train-0001")
	if err != nil || v1 != 1 {
		t.Fatalf("reserve: %d %v", v1, err)
	}
	// A reserved version is not visible until registered.
	if _, err := ms.Get(ctx, "default", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reserved model visible: %v", err)
	}
	if err := ms.Register(ctx, store.ModelRow{Name: "default", Version: v1, JobID: "train-0001", AUC: 0.71, KS: 0.36, Record: []byte(`{"name":"default","version":1}`), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	v2, err := ms.Reserve(ctx, "default", "train-0002")
	if err != nil || v2 != 2 {
		t.Fatalf("second reserve: %d %v", v2, err)
	}
	if err := ms.Register(ctx, store.ModelRow{Name: "default", Version: v2, JobID: "train-0002", AUC: 0.72, Record: []byte(`{"version":2}`), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// Registering twice (or an unreserved version) fails.
	if err := ms.Register(ctx, store.ModelRow{Name: "default", Version: v2, Record: []byte(`{}`)}); err == nil {
		t.Error("registered a version twice")
	}
	// A failed training releases its version; the next one is reused.
	v3, _ := ms.Reserve(ctx, "default", "train-0003")
	if err := ms.Release(ctx, "default", v3); err != nil {
		t.Fatal(err)
	}
	other, _ := ms.Reserve(ctx, "polish", "train-0004")
	_ = ms.Register(ctx, store.ModelRow{Name: "polish", Version: other, Record: []byte(`{}`), CreatedAt: time.Now()})
	db.Close()

	db = open()
	defer db.Close()
	ms, err = store.NewModels(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ms.Get(ctx, "default", 0)
	if err != nil || got.Version != 2 || got.AUC != 0.72 || string(got.Record) != `{"version":2}` {
		t.Fatalf("latest after reopen: %+v %v", got, err)
	}
	old, err := ms.Get(ctx, "default", 1)
	if err != nil || old.JobID != "train-0001" || old.KS != 0.36 {
		t.Fatalf("v1 after reopen: %+v %v", old, err)
	}
	if _, err := ms.Get(ctx, "default", 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("released version visible: %v", err)
	}
	list, err := ms.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "default" || list[0].Version != 2 || list[1].Name != "polish" {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestModelsPersistSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	testModelsPersist(t, func() *store.DB {
		db, err := store.OpenSQLite(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}

func TestModelsPersistPostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	testModelsPersist(t, func() *store.DB {
		db, err := store.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}
