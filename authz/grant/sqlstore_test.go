package grant

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"veil/hub/store"
)

// testDBs opens a fresh SQLite file and, when a server is reachable, a fresh
// PostgreSQL schema (dropped at the end), so both backends run the same test.
func testDBs(t *testing.T) map[string]*store.DB {
	t.Helper()
	ctx := context.Background()
	out := map[string]*store.DB{}
	lite, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "platform.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out["sqlite"] = lite

	dsn := os.Getenv("VEIL_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://veil:veil@127.0.0.1:5432/veil_test?sslmode=disable"
	}
	admin, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must provide PostgreSQL: %v", err)
		}
		t.Logf("PostgreSQL not reachable, testing SQLite only: %v", err)
		return out
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "grant_test_" + hex.EncodeToString(b[:])
	if _, err := admin.SQL.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	pg, err := store.OpenPostgres(ctx, dsn+sep+"search_path="+schema)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pg.Close()
		admin.SQL.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	out["postgres"] = pg
	return out
}

func TestSQLStore(t *testing.T) {
	for name, db := range testDBs(t) {
		t.Run(name, func(t *testing.T) {
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
