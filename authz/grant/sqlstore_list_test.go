package grant

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"
)

func TestSQLStoreListRevocationsAndUseCount(t *testing.T) {
	ctx := context.Background()
	for name, open := range testDBs {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			s, err := NewSQLStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			_, priv, _ := ed25519.GenerateKey(nil)
			at := time.Now().UTC().Truncate(time.Second)
			for _, id := range []string{"g2", "g1"} {
				tok, err := SignRevocation(priv, "E1", id, at)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Revoke(ctx, Revocation{Issuer: "E1", GrantID: id, RevokedAt: at, Token: tok}); err != nil {
					t.Fatal(err)
				}
			}
			revs, err := s.ListRevocations(ctx)
			if err != nil || len(revs) != 2 || revs[0].GrantID != "g1" || revs[1].GrantID != "g2" || revs[0].Token == "" || !revs[0].RevokedAt.Equal(at) {
				t.Fatalf("list revocations: %v %+v", err, revs)
			}
			if n, err := s.UseCount(ctx, "E1", "g1"); err != nil || n != 0 {
				t.Fatalf("use count before use: %d %v", n, err)
			}
			for range 2 {
				if _, _, err := s.Use(ctx, "E1", "g1", 5); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := s.UseCount(ctx, "E1", "g1"); err != nil || n != 2 {
				t.Fatalf("use count after two uses: %d %v", n, err)
			}
		})
	}
}
