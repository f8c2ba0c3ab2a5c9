package he

import (
	"context"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// Encryptor encrypts under a (collective or recipient) public key. It is not
// safe for concurrent use; the batch methods parallelise internally.
type Encryptor struct {
	params *Params
	pk     *PublicKey
	enc    *rlwe.Encryptor
	ecd    *hefloat.Encoder
}

// NewEncryptor returns an encryptor for pk.
func NewEncryptor(pk *PublicKey) *Encryptor {
	p := pk.params
	return &Encryptor{params: p, pk: pk, enc: rlwe.NewEncryptor(p.Parameters, pk.pk), ecd: hefloat.NewEncoder(p.Parameters)}
}

// ShallowCopy returns an encryptor for use in another goroutine.
func (e *Encryptor) ShallowCopy() *Encryptor {
	return &Encryptor{params: e.params, pk: e.pk, enc: e.enc.ShallowCopy(), ecd: e.ecd.ShallowCopy()}
}

// EncryptCoeffs encrypts up to N values as polynomial coefficients at the top
// level and the default scale.
func (e *Encryptor) EncryptCoeffs(values []float64) (*rlwe.Ciphertext, error) {
	return e.encrypt(values, false)
}

// EncryptSlots encrypts up to MaxSlots values in the slots at the top level
// and the default scale.
func (e *Encryptor) EncryptSlots(values []float64) (*rlwe.Ciphertext, error) {
	return e.encrypt(values, true)
}

func (e *Encryptor) encrypt(values []float64, batched bool) (*rlwe.Ciphertext, error) {
	return e.encryptAt(values, batched, e.params.MaxLevel())
}

// encryptAt encodes values in the slots (batched) or the coefficients at
// level and the default scale, and encrypts them; level must be valid.
func (e *Encryptor) encryptAt(values []float64, batched bool, level int) (*rlwe.Ciphertext, error) {
	p := e.params
	limit := p.N()
	if batched {
		limit = p.MaxSlots()
	}
	if len(values) > limit {
		return nil, fmt.Errorf("he: encrypt: %d values, at most %d fit", len(values), limit)
	}
	pt := hefloat.NewPlaintext(p.Parameters, level)
	pt.IsBatched = batched
	if err := e.ecd.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("he: encode: %w", err)
	}
	ct, err := e.enc.EncryptNew(pt)
	if err != nil {
		return nil, fmt.Errorf("he: encrypt: %w", err)
	}
	return ct, nil
}

// EncryptCoeffsBatch encrypts each vector with EncryptCoeffs, in parallel.
func (e *Encryptor) EncryptCoeffsBatch(ctx context.Context, vectors [][]float64) ([]*rlwe.Ciphertext, error) {
	return e.encryptBatch(ctx, vectors, false)
}

// EncryptSlotsBatch encrypts each vector with EncryptSlots, in parallel.
func (e *Encryptor) EncryptSlotsBatch(ctx context.Context, vectors [][]float64) ([]*rlwe.Ciphertext, error) {
	return e.encryptBatch(ctx, vectors, true)
}

func (e *Encryptor) encryptBatch(ctx context.Context, vectors [][]float64, batched bool) ([]*rlwe.Ciphertext, error) {
	return e.encryptEach(ctx, vectors, func(w *Encryptor, v []float64) (*rlwe.Ciphertext, error) { return w.encrypt(v, batched) })
}

// encryptEach runs encrypt on each vector, in parallel, each worker with its
// own ShallowCopy of e.
func (e *Encryptor) encryptEach(ctx context.Context, vectors [][]float64, encrypt func(w *Encryptor, v []float64) (*rlwe.Ciphertext, error)) ([]*rlwe.Ciphertext, error) {
	out := make([]*rlwe.Ciphertext, len(vectors))
	err := Parallel(ctx, len(vectors), func() (*Encryptor, error) { return e.ShallowCopy(), nil },
		func(w *Encryptor, i int) error {
			ct, err := encrypt(w, vectors[i])
			if err != nil {
				return fmt.Errorf("vector %d: %w", i, err)
			}
			out[i] = ct
			return nil
		})
	return out, err
}

// EncodeCoeffsMontgomery encodes values (≤ N) as polynomial coefficients at
// the given level and scale, in NTT and Montgomery form: the operand format
// of ring.MulCoeffsMontgomery*, for repeated plaintext×ciphertext products
// without per-product conversions. Each value·scale must stay below 2^62.
func (p *Params) EncodeCoeffsMontgomery(values []float64, level int, scale float64) (*rlwe.Plaintext, error) {
	if len(values) > p.N() {
		return nil, fmt.Errorf("he: encode: %d values, at most %d fit", len(values), p.N())
	}
	if level < 0 || level > p.MaxLevel() || !(scale >= 1) {
		return nil, fmt.Errorf("he: encode: invalid level %d or scale %g", level, scale)
	}
	pt := hefloat.NewPlaintext(p.Parameters, level)
	pt.IsBatched = false
	pt.Scale = rlwe.NewScale(scale)
	moduli := p.Q()[:level+1]
	for c, v := range values {
		x := math.Round(v * scale)
		if !(math.Abs(x) < 1<<62) {
			return nil, fmt.Errorf("he: encode: value %d too large for scale %g", c, scale)
		}
		if x >= 0 {
			u := uint64(x)
			for i, q := range moduli {
				pt.Value.Coeffs[i][c] = u % q
			}
		} else {
			u := uint64(-x)
			for i, q := range moduli {
				pt.Value.Coeffs[i][c] = (q - u%q) % q
			}
		}
	}
	rq := p.RingQ().AtLevel(level)
	rq.NTT(pt.Value, pt.Value)
	rq.MForm(pt.Value, pt.Value)
	return pt, nil
}
