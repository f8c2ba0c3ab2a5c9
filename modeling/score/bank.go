package score

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"veil/modeling/scorecard"
	"veil/mpc/he"
)

// BankKey is a bank's CKKS key pair for one scoring parameter set. Scores
// are switched (PCKS) to its public key; the secret key never leaves the
// bank's machine.
type BankKey struct {
	params *he.Params
	rk     *he.RecipientKey
}

// GenerateBankKey makes a fresh key pair for the parameter set.
func GenerateBankKey(params *he.Params) (*BankKey, error) {
	if params == nil {
		return nil, errors.New("score: bank key: nil parameter set")
	}
	return &BankKey{params: params, rk: he.NewRecipientKey(params)}, nil
}

// Params returns the key's parameter set.
func (k *BankKey) Params() *he.Params { return k.params }

// PublicKey returns the public half for PCKS.
func (k *BankKey) PublicKey() *he.PublicKey { return k.rk.PublicKey() }

type bankKeyFile struct {
	Kind        string `json:"kind"`
	ParamSet    string `json:"param_set"`
	Fingerprint string `json:"fingerprint"`
	Secret      []byte `json:"secret_key,omitempty"`
	Public      []byte `json:"public_key"`
}

const (
	bankSecretKind = "veil-bank-scoring-key"
	bankPublicKind = "veil-bank-scoring-public-key"
)

// MarshalSecret serializes the whole key pair for the bank's own storage.
func (k *BankKey) MarshalSecret() ([]byte, error) {
	sec, err := k.rk.MarshalSecret()
	if err != nil {
		return nil, fmt.Errorf("score: bank key: %w", err)
	}
	pub, err := k.rk.PublicKey().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("score: bank key: %w", err)
	}
	return json.Marshal(bankKeyFile{Kind: bankSecretKind, ParamSet: k.params.Name(), Fingerprint: k.params.Fingerprint().String(), Secret: sec, Public: pub})
}

// MarshalPublic serializes the public key with its parameter set's name and
// fingerprint, for registration with the platform.
func (k *BankKey) MarshalPublic() ([]byte, error) {
	pub, err := k.rk.PublicKey().MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("score: bank key: %w", err)
	}
	return json.Marshal(bankKeyFile{Kind: bankPublicKind, ParamSet: k.params.Name(), Fingerprint: k.params.Fingerprint().String(), Public: pub})
}

// UnmarshalBankKey restores a key pair saved by MarshalSecret.
func UnmarshalBankKey(data []byte) (*BankKey, error) {
	var f bankKeyFile
	if err := json.Unmarshal(data, &f); err != nil || f.Kind != bankSecretKind {
		return nil, fmt.Errorf("score: not a bank scoring key file (expected kind %q)", bankSecretKind)
	}
	params, err := he.ByName(f.ParamSet)
	if err != nil {
		return nil, fmt.Errorf("score: bank key: %w", err)
	}
	rk, err := params.UnmarshalRecipientKey(f.Secret, f.Public)
	if err != nil {
		return nil, fmt.Errorf("score: bank key: %w", err)
	}
	return &BankKey{params: params, rk: rk}, nil
}

// ErrWrongParams is wrapped by errors about a bank key made for another
// parameter set than the model's.
var ErrWrongParams = errors.New("bank key has the wrong parameters")

// ParseBankPublicKey parses a bank public key (MarshalPublic's output) and
// checks that it was made for params; a key for another parameter set is
// rejected with an error naming both sets.
func ParseBankPublicKey(params *he.Params, data []byte) (*he.PublicKey, error) {
	var f bankKeyFile
	if err := json.Unmarshal(data, &f); err != nil || f.Kind != bankPublicKind || len(f.Public) == 0 {
		return nil, fmt.Errorf("score: not a bank scoring public key (expected JSON of kind %q)", bankPublicKind)
	}
	_, fp, err := he.PeekFingerprint(f.Public)
	if err != nil {
		return nil, fmt.Errorf("score: bank public key: %w", err)
	}
	if fp != params.Fingerprint() || f.ParamSet != params.Name() {
		return nil, fmt.Errorf("score: %w: it was made for parameter set %q (fingerprint %s) but the model scores under %q (fingerprint %s); generate one with `veil bank keys gen --params %s`",
			ErrWrongParams, f.ParamSet, fp, params.Name(), params.Fingerprint(), params.Name())
	}
	pk, err := params.UnmarshalPublicKey(f.Public)
	if err != nil {
		return nil, fmt.Errorf("score: bank public key: %w", err)
	}
	return pk, nil
}

// BankPublicKeyParamSet returns the parameter set a bank public key claims.
func BankPublicKeyParamSet(data []byte) (string, error) {
	var f bankKeyFile
	if err := json.Unmarshal(data, &f); err != nil || f.Kind != bankPublicKind {
		return "", fmt.Errorf("score: not a bank scoring public key (expected JSON of kind %q)", bankPublicKind)
	}
	return f.ParamSet, nil
}

// decrypt opens the switched ciphertexts and returns the first n slot values.
func (k *BankKey) decrypt(ctx context.Context, cts [][]byte, n int) ([]float64, error) {
	slots := k.params.MaxSlots()
	if need := (n + slots - 1) / slots; len(cts) != need {
		return nil, fmt.Errorf("score: %d result ciphertexts for %d enterprises, want %d", len(cts), n, need)
	}
	out := make([]float64, 0, n)
	for i, b := range cts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ct, err := k.params.UnmarshalCiphertext(b, -1)
		if err != nil {
			return nil, fmt.Errorf("score: result ciphertext %d: %w", i, err)
		}
		vals, err := k.rk.DecryptSlots(ct)
		if err != nil {
			return nil, fmt.Errorf("score: decrypt result %d: %w", i, err)
		}
		take := min(slots, n-len(out))
		out = append(out, vals[:take]...)
	}
	return out, nil
}

// Score is one enterprise's decrypted score.
type Score struct {
	Logit       float64 `json:"logit"`                  // ln(PD / (1 - PD))
	Probability float64 `json:"probability_of_default"` // sigmoid(logit)
	Points      float64 `json:"points"`                 // scorecard points
}

// Sigmoid is 1 / (1 + e^-z), computed without overflow.
func Sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// Logit is ln(p / (1 - p)).
func Logit(p float64) float64 { return math.Log(p) - math.Log1p(-p) }

// DecryptScores opens a score result for n enterprises (in request order)
// and applies the sigmoid and the model's scorecard.
func (k *BankKey) DecryptScores(ctx context.Context, cts [][]byte, n int, card scorecard.Scorecard) ([]Score, error) {
	logits, err := k.decrypt(ctx, cts, n)
	if err != nil {
		return nil, err
	}
	out := make([]Score, n)
	for i, z := range logits {
		pts, err := card.PointsFromLogit(z)
		if err != nil {
			return nil, fmt.Errorf("score: enterprise %d: %w", i, err)
		}
		out[i] = Score{Logit: z, Probability: Sigmoid(z), Points: pts}
	}
	return out, nil
}

// PrescreenOutcome is one enterprise's pre-screen result: Pass when the
// probability of default is below the cutoff. Value is the decrypted step
// output (≈ 1 pass, ≈ 0 fail); Clear is false when it lies in the
// transition band (0.1, 0.9), i.e. the score is near the cutoff.
type PrescreenOutcome struct {
	Pass  bool    `json:"pass"`
	Value float64 `json:"value"`
	Clear bool    `json:"clear"`
}

// DecryptPrescreen opens a pre-screen result: each value is thresholded at 0.5.
func (k *BankKey) DecryptPrescreen(ctx context.Context, cts [][]byte, n int) ([]PrescreenOutcome, error) {
	vals, err := k.decrypt(ctx, cts, n)
	if err != nil {
		return nil, err
	}
	out := make([]PrescreenOutcome, n)
	for i, v := range vals {
		out[i] = PrescreenOutcome{Pass: v > 0.5, Value: v, Clear: v < 0.1 || v > 0.9}
	}
	return out, nil
}
