package psi

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestPropertyAlignMatchesPlainIntersection: for any 2 or 3 small sets
// drawn from a small universe (so that overlaps, duplicates and empty IDs
// are common), every party's result equals the plain intersection.
func TestPropertyAlignMatchesPlainIntersection(t *testing.T) {
	protos := []Protocol{ProtocolECDH, ProtocolKKRT}
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		parties := rapid.IntRange(2, 3).Draw(rt, "parties")
		id := rapid.SampledFrom(append(idsUniverse(24), "")).AsAny()
		sets := make([][]string, parties)
		for k := range sets {
			raw := rapid.SliceOfN(id, 0, 20).Draw(rt, fmt.Sprintf("set%d", k))
			for _, v := range raw {
				sets[k] = append(sets[k], v.(string))
			}
		}
		cfg := Config{
			Session:   fmt.Sprintf("prop-%d", run),
			Protocol:  rapid.SampledFrom(protos).Draw(rt, "protocol"),
			ChunkSize: rapid.IntRange(1, 9).Draw(rt, "chunk"),
		}
		run++
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := runAlign(rt, ctx, cfg, sets)
		if err != nil {
			rt.Fatalf("align: %v", err)
		}
		want := plainIntersection(sets...)
		for k, r := range res {
			if len(r.IDs) != len(want) || (len(want) > 0 && !slices.Equal(r.IDs, want)) {
				rt.Fatalf("party %d: got %v, want %v", k, r.IDs, want)
			}
		}
	})
}

func idsUniverse(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = uscc(i)
	}
	return out
}
