package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"veil/hub/store"
	"veil/hub/store/storetest"
)

// testDBs opens a fresh database per backend inside each subtest: a SQLite
// file, and a fresh PostgreSQL schema (storetest.PostgresDSN skips that
// subtest when no server is reachable outside CI).
var testDBs = map[string]func(t *testing.T) *store.DB{
	"sqlite": func(t *testing.T) *store.DB {
		db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "platform.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
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

func TestSQLStore(t *testing.T) {
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			ctx := context.Background()
			s, err := NewSQLStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := NewSQLStore(ctx, db); err != nil {
				t.Fatalf("second migration: %v", err)
			}
			pub, key, _ := ed25519.GenerateKey(rand.Reader)
			pub2, _, _ := ed25519.GenerateKey(rand.Reader)
			if _, err := s.EnterpriseKey(ctx, testUSCC); !errors.Is(err, ErrUnknownEnterprise) {
				t.Fatalf("unknown: %v", err)
			}
			if changed, err := s.RegisterEnterprise(ctx, testUSCC, pub, false); err != nil || !changed {
				t.Fatalf("register: %v %v", changed, err)
			}
			if changed, err := s.RegisterEnterprise(ctx, testUSCC, pub, false); err != nil || changed {
				t.Fatalf("re-register same key: %v %v", changed, err)
			}
			if _, err := s.RegisterEnterprise(ctx, testUSCC, pub2, false); !errors.Is(err, ErrEnterpriseExists) {
				t.Fatalf("silent key replacement: %v", err)
			}
			got, err := s.EnterpriseKey(ctx, testUSCC)
			if err != nil || !got.Equal(pub) {
				t.Fatalf("key: %v", err)
			}
			list, err := s.ListEnterprises(ctx)
			if err != nil || len(list) != 1 || list[0].USCC != testUSCC {
				t.Fatalf("list: %+v %v", list, err)
			}

			v, err := NewVerifier(Config{Directory: s, Revocations: s, Uses: s, Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			c := baseClaims()
			c.MaxUses = 3
			tok, _ := Issue(key, c)
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok, over := 0, 0
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := v.Verify(ctx, tok, req())
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
					case ReasonOf(err) == ReasonOverUseCount:
						over++
					default:
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if ok != 3 || over != 13 {
				t.Fatalf("ok=%d over=%d, want 3/13", ok, over)
			}
			rtok, _ := SignRevocation(key, testUSCC, c.ID, t0)
			if _, err := v.Revoke(ctx, rtok); err != nil {
				t.Fatal(err)
			}
			if _, err := v.Revoke(ctx, rtok); err != nil {
				t.Fatalf("second revoke: %v", err)
			}
			if _, err := v.Verify(ctx, tok, req()); ReasonOf(err) != ReasonRevoked {
				t.Fatalf("after revoke: %v", err)
			}
			if changed, err := s.RegisterEnterprise(ctx, testUSCC, pub2, true); err != nil || !changed {
				t.Fatalf("replace: %v", err)
			}
		})
	}
}
