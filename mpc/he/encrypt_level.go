package he

import (
	"context"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// EncryptSlotsAtLevel encrypts up to MaxSlots values in the slots directly
// at level (and the default scale): cheaper than encrypting at the top level
// and dropping levels when no multiplication follows (e.g. a sum that is
// switched to a recipient right away).
func (e *Encryptor) EncryptSlotsAtLevel(values []float64, level int) (*rlwe.Ciphertext, error) {
	p := e.params
	if level < 0 || level > p.MaxLevel() {
		return nil, fmt.Errorf("he: encrypt: level %d outside [0, %d]", level, p.MaxLevel())
	}
	if len(values) > p.MaxSlots() {
		return nil, fmt.Errorf("he: encrypt: %d values, at most %d fit", len(values), p.MaxSlots())
	}
	pt := hefloat.NewPlaintext(p.Parameters, level)
	if err := e.ecd.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("he: encode: %w", err)
	}
	ct := rlwe.NewCiphertext(p.Parameters, 1, level)
	if err := e.enc.Encrypt(pt, ct); err != nil {
		return nil, fmt.Errorf("he: encrypt: %w", err)
	}
	return ct, nil
}

// EncryptSlotsBatchAtLevel is EncryptSlotsAtLevel over many vectors, in parallel.
func (e *Encryptor) EncryptSlotsBatchAtLevel(ctx context.Context, vectors [][]float64, level int) ([]*rlwe.Ciphertext, error) {
	out := make([]*rlwe.Ciphertext, len(vectors))
	err := Parallel(ctx, len(vectors), func() (*Encryptor, error) { return e.ShallowCopy(), nil },
		func(w *Encryptor, i int) error {
			ct, err := w.EncryptSlotsAtLevel(vectors[i], level)
			if err != nil {
				return fmt.Errorf("vector %d: %w", i, err)
			}
			out[i] = ct
			return nil
		})
	return out, err
}
