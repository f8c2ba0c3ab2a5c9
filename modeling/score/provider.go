package score

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"veil/mpc/he"
)

// Mode says what a scoring request computes.
type Mode int

// Modes.
const (
	ModeScore     Mode = iota // the bank receives the logit of each enterprise
	ModePrescreen             // the bank receives only pass/fail
)

func (m Mode) String() string {
	if m == ModePrescreen {
		return "prescreen"
	}
	return "score"
}

// PartialLogit is x·w: a party's share of an enterprise's logit, from the
// enterprise's preprocessed features and the party's own weights.
func PartialLogit(x, w []float64) (float64, error) {
	if len(x) != len(w) {
		return 0, fmt.Errorf("score: %d features, the model part has %d weights", len(x), len(w))
	}
	var u float64
	for i := range x {
		u += x[i] * w[i]
	}
	if math.IsNaN(u) || math.IsInf(u, 0) {
		return 0, errors.New("score: partial logit is not finite")
	}
	return u, nil
}

// Slots returns how many enterprises fit in one ciphertext.
func Slots(params *he.Params) int { return params.MaxSlots() }

// Ciphertexts returns how many ciphertexts a batch of n enterprises needs.
func Ciphertexts(params *he.Params, n int) int {
	s := params.MaxSlots()
	return (n + s - 1) / s
}

// Provider is a feature party's side of scoring: it encrypts its partial
// logits under the model's collective key and contributes PCKS shares to
// switch the platform's sum to the bank's key.
type Provider struct {
	holder *KeyHolder
	enc    *he.Encryptor
}

// NewProvider returns the scoring side of a finished key holder.
func NewProvider(h *KeyHolder) (*Provider, error) {
	if h == nil || h.pk == nil {
		return nil, errors.New("score: provider: key setup not finished")
	}
	return &Provider{holder: h, enc: he.NewEncryptor(h.pk)}, nil
}

// Params returns the scoring parameter set.
func (p *Provider) Params() *he.Params { return p.holder.params }

// Scale returns the factor a party applies to its partial logits before
// encrypting them: 1 to score, -1/domain to pre-screen (the platform then
// adds (cutoff logit - bias)/domain, so the step polynomial sees
// (cutoff - logit)/domain in [-1, 1]).
func (m Mode) Scale(domain float64) float64 {
	if m == ModePrescreen {
		return -1 / domain
	}
	return 1
}

// EncryptPartials encrypts u (one partial logit per enterprise, in request
// order), multiplied by scale, many enterprises per ciphertext. In score
// mode the ciphertexts are made at level 0 (no multiplication follows);
// in pre-screen mode they are at the top level for the step polynomial.
func (p *Provider) EncryptPartials(ctx context.Context, u []float64, mode Mode, scale float64) ([][]byte, error) {
	params := p.holder.params
	if len(u) == 0 {
		return nil, errors.New("score: no enterprises to encrypt")
	}
	if !(math.Abs(scale) > 0) || math.IsInf(scale, 0) {
		return nil, fmt.Errorf("score: invalid scale %g", scale)
	}
	slots := params.MaxSlots()
	vecs := make([][]float64, Ciphertexts(params, len(u)))
	for i := range vecs {
		lo, hi := i*slots, min((i+1)*slots, len(u))
		v := make([]float64, hi-lo)
		for j := lo; j < hi; j++ {
			x := u[j] * scale
			if math.IsNaN(x) || math.Abs(x) > 256 {
				return nil, fmt.Errorf("score: partial logit %d (%g) is out of the encodable range ±256", j, u[j])
			}
			v[j-lo] = x
		}
		vecs[i] = v
	}
	level := params.MaxLevel()
	if mode == ModeScore {
		level = 0 // only additions follow: encrypt at level 0 (cheaper, 5x smaller)
	}
	cts, err := p.enc.EncryptSlotsBatchAtLevel(ctx, vecs, level)
	if err != nil {
		return nil, fmt.Errorf("score: encrypt partial logits: %w", err)
	}
	out := make([][]byte, len(cts))
	for i, ct := range cts {
		if out[i], err = params.MarshalCiphertext(ct); err != nil {
			return nil, fmt.Errorf("score: %w", err)
		}
	}
	return out, nil
}

// PCKSShares returns this party's key-switch shares (with flooding noise)
// that move the platform's result ciphertexts to the bank's public key.
func (p *Provider) PCKSShares(ctx context.Context, results [][]byte, bank *he.PublicKey) ([][]byte, error) {
	return p.holder.PCKSShares(ctx, results, bank)
}

// PCKSShares is the key-switch step for any key holder (the platform uses it
// for its own share).
func (h *KeyHolder) PCKSShares(ctx context.Context, results [][]byte, bank *he.PublicKey) ([][]byte, error) {
	if bank == nil {
		return nil, errors.New("score: PCKS: no bank public key")
	}
	cts := make([]*rlwe.Ciphertext, len(results))
	for i, b := range results {
		ct, err := h.params.UnmarshalCiphertext(b, -1)
		if err != nil {
			return nil, fmt.Errorf("score: PCKS: result ciphertext %d: %w", i, err)
		}
		cts[i] = ct
	}
	shares, err := h.kp.PCKSShares(ctx, cts, bank)
	if err != nil {
		return nil, fmt.Errorf("score: PCKS: %w", err)
	}
	return shares, nil
}
