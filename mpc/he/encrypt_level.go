package he

import (
	"context"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// EncryptSlotsAtLevel encrypts up to MaxSlots values in the slots directly
// at level (and the default scale): cheaper than encrypting at the top level
// and dropping levels when no multiplication follows (e.g. a sum that is
// switched to a recipient right away).
func (e *Encryptor) EncryptSlotsAtLevel(values []float64, level int) (*rlwe.Ciphertext, error) {
	if level < 0 || level > e.params.MaxLevel() {
		return nil, fmt.Errorf("he: encrypt: level %d outside [0, %d]", level, e.params.MaxLevel())
	}
	return e.encryptAt(values, true, level)
}

// EncryptSlotsBatchAtLevel is EncryptSlotsAtLevel over many vectors, in parallel.
func (e *Encryptor) EncryptSlotsBatchAtLevel(ctx context.Context, vectors [][]float64, level int) ([]*rlwe.Ciphertext, error) {
	return e.encryptEach(ctx, vectors, func(w *Encryptor, v []float64) (*rlwe.Ciphertext, error) { return w.EncryptSlotsAtLevel(v, level) })
}
