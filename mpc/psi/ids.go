package psi

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"time"
)

// abortTimeout bounds the best-effort abort notice sent to a peer.
const abortTimeout = 2 * time.Second

// InputStats counts what was done to a party's input before the protocol:
// empty IDs are dropped and duplicates are kept once. Both are warnings,
// not errors, so that one bad row does not stop a job; callers should
// report non-zero counts.
type InputStats struct {
	Input      int `json:"input"`      // IDs given
	Unique     int `json:"unique"`     // IDs that took part
	Empty      int `json:"empty"`      // empty IDs dropped
	Duplicates int `json:"duplicates"` // repeated IDs dropped (each repeat counts once)
}

// uniqueIDs returns the distinct non-empty IDs in first-seen order. IDs are
// compared byte for byte: normalisation (trimming, case) is the caller's.
func uniqueIDs(ids []string) ([]string, InputStats, error) {
	st := InputStats{Input: len(ids)}
	if len(ids) > maxSetSize {
		return nil, st, fmt.Errorf("psi: %d IDs exceed the limit of %d", len(ids), maxSetSize)
	}
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id == "" {
			st.Empty++
			continue
		}
		if _, dup := seen[id]; dup {
			st.Duplicates++
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	st.Unique = len(out)
	return out, st, nil
}

// newRand returns a ChaCha8 generator seeded from the OS: a CSPRNG fast
// enough to shuffle millions of positions.
func newRand() (*rand.Rand, error) {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("psi: seeding shuffle: %w", err)
	}
	return rand.New(rand.NewChaCha8(seed)), nil
}

// randomPerm returns a uniformly random permutation of [0, n): perm[pos] is
// the index of the item sent at position pos.
func randomPerm(n int) ([]uint32, error) {
	r, err := newRand()
	if err != nil {
		return nil, err
	}
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	r.Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return perm, nil
}
