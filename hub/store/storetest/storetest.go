package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"veil/hub/store"
)

// DefaultDSN is the server .ci/run starts.
const DefaultDSN = "postgres://veil:veil@127.0.0.1:5432/veil_test?sslmode=disable"

// PostgresDSN returns the DSN of a fresh, empty schema on the test server,
// dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("VEIL_TEST_POSTGRES")
	if dsn == "" {
		dsn = DefaultDSN
	}
	ctx := context.Background()
	admin, err := store.OpenPostgres(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must provide PostgreSQL (VEIL_TEST_POSTGRES): %v", err)
		}
		t.Skipf("no PostgreSQL server reachable at %s (set VEIL_TEST_POSTGRES): %v", dsn, err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.SQL.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin.SQL.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
}
