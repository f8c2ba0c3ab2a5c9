package score

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/utils/bignum"

	"veil/mpc/he"
)

// DefaultPrescreenDomain bounds |logit - cutoff logit| for the pre-screen
// step polynomial: inputs are divided by it so they fall in [-1, 1].
const DefaultPrescreenDomain = 16

// StepDegree is the degree of the pre-screen step polynomial: 15 uses
// exactly the four levels of the scoring set.
const StepDegree = 15

// stepSteepness k of the smoothed step 0.5 + 0.5·erf(k·t) that the degree-15
// Chebyshev interpolant approximates: k = 6 keeps the interpolant within
// [-0.01, 1.01] on [-1, 1] and within 0.02 of 0 or 1 for |t| ≥ 0.23.
const stepSteepness = 6

// StepPolynomial returns the Chebyshev coefficients (on [-1, 1]) of the
// pre-screen step: ≈ 1 for t > 0 (pass), ≈ 0 for t < 0 (fail).
func StepPolynomial() []float64 {
	f := func(x float64) float64 { return 0.5 + 0.5*math.Erf(stepSteepness*x) }
	n := StepDegree + 1
	c := make([]float64, n)
	for j := 0; j < n; j++ {
		var s float64
		for k := 0; k < n; k++ {
			th := math.Pi * (float64(k) + 0.5) / float64(n)
			s += f(math.Cos(th)) * math.Cos(float64(j)*th)
		}
		c[j] = 2 * s / float64(n)
	}
	c[0] /= 2
	return c
}

// EvalStep evaluates the step polynomial in plaintext (Clenshaw), e.g. to
// predict the bank's output in tests.
func EvalStep(t float64) float64 {
	c := StepPolynomial()
	var b1, b2 float64
	for j := len(c) - 1; j >= 1; j-- {
		b1, b2 = 2*t*b1-b2+c[j], b1
	}
	return t*b1 - b2 + c[0]
}

// Combine describes how the platform combines the parties' ciphertexts.
type Combine struct {
	Mode        Mode
	Bias        float64 // the model's intercept (a model parameter, not data)
	CutoffLogit float64 // pre-screen: logit of the PD cutoff
	Domain      float64 // pre-screen: bound on |logit - cutoff logit|; 0 means DefaultPrescreenDomain
}

func (c Combine) domain() float64 {
	if c.Domain > 0 {
		return c.Domain
	}
	return DefaultPrescreenDomain
}

// Scale is the factor the parties apply to their partial logits for c.
func (c Combine) Scale() float64 { return c.Mode.Scale(c.domain()) }

// Aggregator is the platform's side of scoring: it adds the parties'
// encrypted partial logits and the bias and, to pre-screen, evaluates the
// step polynomial, all under the collective key (it can decrypt nothing).
type Aggregator struct {
	key  *EvalKey
	eval *hefloat.Evaluator
	step hefloat.Polynomial
}

// NewAggregator returns an aggregator for the model's evaluation key.
func NewAggregator(key *EvalKey) (*Aggregator, error) {
	if key == nil || key.PublicKey == nil || key.RelinKey == nil {
		return nil, errors.New("score: aggregator: incomplete evaluation key")
	}
	p := key.Params
	eval := hefloat.NewEvaluator(p.Parameters, rlwe.NewMemEvaluationKeySet(key.RelinKey.Raw()))
	bp := bignum.NewPolynomial(bignum.Chebyshev, StepPolynomial(), [2]float64{-1, 1})
	return &Aggregator{key: key, eval: eval, step: hefloat.NewPolynomial(bp)}, nil
}

// Params returns the scoring parameter set.
func (a *Aggregator) Params() *he.Params { return a.key.Params }

// Combine adds parts[k][j] (party k's ciphertext j) over k, adds the bias
// and, in pre-screen mode, evaluates the step polynomial on
// (cutoff - logit)/domain. n is the number of enterprises in the batch. The
// results are still under the collective key.
func (a *Aggregator) Combine(ctx context.Context, parts [][][]byte, n int, c Combine) ([][]byte, error) {
	p := a.key.Params
	if len(parts) == 0 {
		return nil, errors.New("score: combine: no party ciphertexts")
	}
	want := Ciphertexts(p, n)
	if n <= 0 {
		return nil, fmt.Errorf("score: combine: %d enterprises", n)
	}
	for k, cts := range parts {
		if len(cts) != want {
			return nil, fmt.Errorf("score: combine: party %d sent %d ciphertexts for %d enterprises, want %d", k, len(cts), n, want)
		}
	}
	if math.IsNaN(c.Bias) || math.IsInf(c.Bias, 0) || math.IsNaN(c.CutoffLogit) || math.IsInf(c.CutoffLogit, 0) {
		return nil, errors.New("score: combine: bias and cutoff must be finite")
	}
	level := 0
	var constant float64 = c.Bias
	if c.Mode == ModePrescreen {
		level = p.MaxLevel()
		if a.step.Depth() > level {
			return nil, fmt.Errorf("score: combine: the step polynomial needs %d levels, %s has %d", a.step.Depth(), p.Name(), level)
		}
		constant = (c.CutoffLogit - c.Bias) / c.domain()
	}
	out := make([][]byte, want)
	type worker struct {
		eval *hefloat.Evaluator
		poly *hefloat.PolynomialEvaluator
	}
	err := he.Parallel(ctx, want, func() (*worker, error) {
		ev := a.eval.ShallowCopy()
		return &worker{eval: ev, poly: hefloat.NewPolynomialEvaluator(p.Parameters, ev)}, nil
	}, func(w *worker, j int) error {
		var acc *rlwe.Ciphertext
		for k := range parts {
			ct, err := p.UnmarshalCiphertext(parts[k][j], level)
			if err != nil {
				return fmt.Errorf("score: combine: party %d ciphertext %d: %w", k, j, err)
			}
			if acc == nil {
				acc = ct
				continue
			}
			if err := w.eval.Add(acc, ct, acc); err != nil {
				return fmt.Errorf("score: combine: add: %w", err)
			}
		}
		if err := w.eval.Add(acc, constant, acc); err != nil {
			return fmt.Errorf("score: combine: add constant: %w", err)
		}
		if c.Mode == ModePrescreen {
			res, err := w.poly.Evaluate(acc, a.step, p.DefaultScale())
			if err != nil {
				return fmt.Errorf("score: combine: step polynomial: %w", err)
			}
			acc = res
		}
		b, err := p.MarshalCiphertext(acc)
		if err != nil {
			return fmt.Errorf("score: combine: %w", err)
		}
		out[j] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Switch collects every key holder's PCKS shares for the result ciphertexts
// and applies them: the output is under the bank's key only. The platform
// runs it; the sums it holds are useless without all shares and, once
// complete, switch the result to a key it does not have.
type Switch struct {
	params  *he.Params
	results []*rlwe.Ciphertext
	sums    []*he.ShareSum
	parties int
	got     int
}

// NewSwitch expects parties shares for each result ciphertext.
func NewSwitch(params *he.Params, results [][]byte, parties int) (*Switch, error) {
	s := &Switch{params: params, parties: parties}
	for i, b := range results {
		ct, err := params.UnmarshalCiphertext(b, -1)
		if err != nil {
			return nil, fmt.Errorf("score: switch: result %d: %w", i, err)
		}
		sum, err := he.NewPCKSShareSum(params, ct.Level(), parties)
		if err != nil {
			return nil, fmt.Errorf("score: switch: %w", err)
		}
		s.results = append(s.results, ct)
		s.sums = append(s.sums, sum)
	}
	return s, nil
}

// Add adds one key holder's shares (one per result ciphertext).
func (s *Switch) Add(shares [][]byte) error {
	if len(shares) != len(s.results) {
		return fmt.Errorf("score: switch: %d shares for %d result ciphertexts", len(shares), len(s.results))
	}
	if s.got >= s.parties {
		return fmt.Errorf("score: switch: already have shares from all %d key holders", s.parties)
	}
	for i, b := range shares {
		if err := s.sums[i].Add(b); err != nil {
			return fmt.Errorf("score: switch: share for result %d: %w", i, err)
		}
	}
	s.got++
	return nil
}

// Result returns the ciphertexts under the bank's key, once every key
// holder contributed.
func (s *Switch) Result() ([][]byte, error) {
	if s.got != s.parties {
		return nil, fmt.Errorf("score: switch: have shares from %d of %d key holders", s.got, s.parties)
	}
	out := make([][]byte, len(s.results))
	for i, ct := range s.results {
		sw, err := s.sums[i].SwitchPCKS(ct)
		if err != nil {
			return nil, fmt.Errorf("score: switch: %w", err)
		}
		if out[i], err = s.params.MarshalCiphertext(sw); err != nil {
			return nil, fmt.Errorf("score: switch: %w", err)
		}
	}
	return out, nil
}
