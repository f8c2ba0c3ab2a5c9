package he

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Names of the built-in parameter sets. They are part of the wire format
// (see Fingerprint): never change the literal behind a name, add a new name.
const (
	// TrainingSetName is the coefficient-packing set used for the vertical LR
	// gradient ("variant B" in the field notes): LogN 13, Q = {60, 45} bits,
	// no special primes (P), so no relinearisation or Galois keys exist and the
	// collective setup is CKG only.
	TrainingSetName = "veil-train-coeff-n13-q105"
	// ScoringSetName is the slot-packing set used for encrypted scoring:
	// LogN 14, conjugate-invariant ring (16384 real slots), Q = {55, 45×4},
	// P = {56, 56}: four levels for an encrypted sigmoid or comparison before
	// the final PCKS to the bank's key, and q0/scale headroom for flooding.
	ScoringSetName = "veil-score-ci-n14-q347"
	// ScoringSmallSetName is a cheaper slot set for scoring by summation only
	// (no homomorphic multiplication after the sum): LogN 13, conjugate-
	// invariant (8192 real slots), Q = {60, 45}, P = {60}.
	ScoringSmallSetName = "veil-score-ci-n13-q165"
)

// MinSmudgingSigma is the smallest flooding (smudging) standard deviation any
// parameter set may use for CKS/PCKS decryption shares. Decryption shares
// without flooding leak the secret key share (Li–Micciancio 2021); 2^20 keeps
// the key-dependent part of a share (≈ 2^6 per coefficient) statistically
// hidden to within the usual practical margin while costing ≈ 2^-23 absolute
// precision at the 2^45 output scales used here.
const MinSmudgingSigma = 1 << 20

// maxLogQP is the HE standard (homomorphicencryption.org, 2018) bound on
// log2(QP) for 128-bit classical security with a ternary secret.
var maxLogQP = map[int]float64{12: 109, 13: 218, 14: 438, 15: 881, 16: 1761}

// TrainingLiteral is the literal behind TrainingSetName (logQP = 105 ≤ 218).
func TrainingLiteral() hefloat.ParametersLiteral {
	return hefloat.ParametersLiteral{
		LogN:            13,
		LogQ:            []int{60, 45},
		LogDefaultScale: 45,
		RingType:        ring.Standard,
	}
}

// TrainingSmudgingSigma is the flooding σ of the training set: 2^26 adds about
// 2^26·√parties/2^45 ≈ 4e-6 absolute error to each decrypted gradient.
const TrainingSmudgingSigma = 1 << 26

// ScoringLiteral is the literal behind ScoringSetName (logQP = 347 ≤ 438).
func ScoringLiteral() hefloat.ParametersLiteral {
	return hefloat.ParametersLiteral{
		LogN:            14,
		LogQ:            []int{55, 45, 45, 45, 45},
		LogP:            []int{56, 56},
		LogDefaultScale: 45,
		RingType:        ring.ConjugateInvariant,
	}
}

// ScoringSmallLiteral is the literal behind ScoringSmallSetName (logQP = 165 ≤ 218).
func ScoringSmallLiteral() hefloat.ParametersLiteral {
	return hefloat.ParametersLiteral{
		LogN:            13,
		LogQ:            []int{60, 45},
		LogP:            []int{60},
		LogDefaultScale: 45,
		RingType:        ring.ConjugateInvariant,
	}
}

// ScoringSmudgingSigma is the flooding σ of the scoring sets: with slot
// decoding the error is ≈ σ·2^10/Δ ≈ 2^-15 on a logit at Δ = 2^45.
const ScoringSmudgingSigma = 1 << 20

// Fingerprint identifies a parameter set (name, ring, moduli, scale, noise
// distributions and flooding σ). Every serialized object carries it, so an
// object made under other parameters is rejected before it is parsed.
type Fingerprint [8]byte

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Params is a CKKS parameter set with its name, its flooding σ and its fingerprint.
// It is immutable and safe for concurrent use.
type Params struct {
	hefloat.Parameters
	name  string
	sigma float64
	fp    Fingerprint
}

// ByName returns one of the built-in parameter sets.
func ByName(name string) (*Params, error) {
	switch name {
	case TrainingSetName:
		return New(name, TrainingLiteral(), TrainingSmudgingSigma)
	case ScoringSetName:
		return New(name, ScoringLiteral(), ScoringSmudgingSigma)
	case ScoringSmallSetName:
		return New(name, ScoringSmallLiteral(), ScoringSmudgingSigma)
	default:
		return nil, fmt.Errorf("he: unknown parameter set %q (known: %s, %s, %s)", name, TrainingSetName, ScoringSetName, ScoringSmallSetName)
	}
}

// Training returns the built-in training set (TrainingSetName).
func Training() (*Params, error) { return ByName(TrainingSetName) }

// Scoring returns the built-in scoring set (ScoringSetName).
func Scoring() (*Params, error) { return ByName(ScoringSetName) }

// New builds a parameter set from a literal. It refuses sets above the HE
// standard's 128-bit bound for their ring degree and flooding σ below
// MinSmudgingSigma.
func New(name string, lit hefloat.ParametersLiteral, smudgingSigma float64) (*Params, error) {
	if name == "" || len(name) > 255 {
		return nil, fmt.Errorf("he: parameter set name must be 1..255 bytes, got %d", len(name))
	}
	if math.IsNaN(smudgingSigma) || smudgingSigma < MinSmudgingSigma || math.IsInf(smudgingSigma, 0) {
		return nil, fmt.Errorf("he: parameter set %q: smudging sigma %g is below the minimum 2^20 (decryption shares must carry flooding noise)", name, smudgingSigma)
	}
	bound, ok := maxLogQP[lit.LogN]
	if !ok {
		return nil, fmt.Errorf("he: parameter set %q: LogN %d has no 128-bit security bound (supported 12..16)", name, lit.LogN)
	}
	logQP := 0
	for _, b := range lit.LogQ {
		logQP += b
	}
	for _, b := range lit.LogP {
		logQP += b
	}
	if float64(logQP) > bound {
		return nil, fmt.Errorf("he: parameter set %q: logQP %d exceeds the 128-bit bound %v for LogN %d", name, logQP, bound, lit.LogN)
	}
	p, err := hefloat.NewParametersFromLiteral(lit)
	if err != nil {
		return nil, fmt.Errorf("he: parameter set %q: %w", name, err)
	}
	if p.LogQP() > bound {
		return nil, fmt.Errorf("he: parameter set %q: logQP %.1f exceeds the 128-bit bound %v", name, p.LogQP(), bound)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("he: parameter set %q: marshal: %w", name, err)
	}
	h := sha256.New()
	h.Write([]byte("veil/he params v1\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(pb)
	var sb [8]byte
	binary.LittleEndian.PutUint64(sb[:], math.Float64bits(smudgingSigma))
	h.Write(sb[:])
	var fp Fingerprint
	copy(fp[:], h.Sum(nil))
	return &Params{Parameters: p, name: name, sigma: smudgingSigma, fp: fp}, nil
}

// Name returns the parameter set's name.
func (p *Params) Name() string { return p.name }

// SmudgingSigma returns the flooding σ that every decryption share of this set carries.
func (p *Params) SmudgingSigma() float64 { return p.sigma }

// Fingerprint returns the parameter set's fingerprint.
func (p *Params) Fingerprint() Fingerprint { return p.fp }

// String describes the set without secrets.
func (p *Params) String() string {
	return fmt.Sprintf("%s (LogN %d, %d levels, logQP %.1f, scale 2^%d, sigma_smudge 2^%.0f, fp %s)",
		p.name, p.LogN(), p.MaxLevel()+1, p.LogQP(), p.LogDefaultScale(), math.Log2(p.sigma), p.fp)
}
