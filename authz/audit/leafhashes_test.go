package audit

import (
	"context"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

func TestStoredLeafHashes(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	l := openLog(t, db, newKeys(t), 100, 0, newClock())
	fill(t, l, 5)
	hs, err := l.StoredLeafHashes(ctx, 1, 4)
	if err != nil || len(hs) != 3 {
		t.Fatalf("%d hashes, %v", len(hs), err)
	}
	i := 0
	err = l.Entries(ctx, 1, 4, func(e RawEntry) error {
		if want := rfc6962.DefaultHasher.HashLeaf(e.Data); string(hs[i]) != string(want) {
			t.Errorf("leaf %d: stored hash differs", e.Seq)
		}
		i++
		return nil
	})
	if err != nil || i != 3 {
		t.Fatal(i, err)
	}
	if hs, err := l.StoredLeafHashes(ctx, 4, 2); err != nil || hs != nil {
		t.Fatalf("empty range: %v %v", hs, err)
	}
}
