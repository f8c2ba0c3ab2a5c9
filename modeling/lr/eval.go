package lr

import (
	"context"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"veil/mpc/he"
)

// Evaluation on the test split, after training, under the job's collective
// key (no new key setup):
//
//  1. The coordinator sends EvalStart{Rows} to every party.
//  2. The label holder answers with a fresh recipient public key of its own
//     (EvalShare.Key); every provider answers with its test partial logits
//     u_k = X_k^test·w_k encrypted under the collective key, slot-packed.
//  3. The coordinator adds the providers' ciphertexts: Enc(Σ_k u_k), and asks
//     every key holder (all parties and itself) for PCKS shares switching the
//     sum to the label holder's key (EvalSwitch).
//  4. It applies the summed shares and sends the result to the label holder
//     (EvalResult), which decrypts Σ_k u_k, adds its own partial logits and
//     intercept and computes AUC, KS and ROC with its labels.
//
// What each party learns: the label holder the per-row sum of the providers'
// test partial logits (with a single provider, that provider's partial
// logits on the test rows: unavoidable, since the score is their sum); a
// provider nothing new; the coordinator ciphertexts only. The result carries
// flooding noise from every share (≈ 2^-12 on a logit). As in training the
// parties are semi-honest: a provider does not authenticate the recipient key
// or the summed ciphertext it switches.

const (
	tagEvalStart byte = iota + 32
	tagEvalShare
	tagEvalSwitch
	tagEvalSwitchShares
	tagEvalResult
)

// EvalStart asks every party for its part of the test-split evaluation.
type EvalStart struct{ Rows int }

// MarshalBinary encodes the message.
func (m *EvalStart) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagEvalStart}}
	w.i64(m.Rows)
	return w.b, nil
}

// UnmarshalEvalStart decodes an EvalStart.
func UnmarshalEvalStart(data []byte) (*EvalStart, error) {
	r, err := openMsg(data, tagEvalStart, "evaluation start")
	if err != nil {
		return nil, err
	}
	m := &EvalStart{Rows: r.i64()}
	return m, r.done("evaluation start")
}

// EvalShare is a party's answer to EvalStart: the label holder's recipient
// public key, or a provider's encrypted test partial logits.
type EvalShare struct {
	Party string
	Key   []byte
	Cts   [][]byte
}

// MarshalBinary encodes the message.
func (m *EvalShare) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagEvalShare}}
	w.str(m.Party)
	w.bytes(m.Key)
	w.list(m.Cts)
	return w.b, nil
}

// UnmarshalEvalShare decodes an EvalShare.
func UnmarshalEvalShare(data []byte) (*EvalShare, error) {
	r, err := openMsg(data, tagEvalShare, "evaluation share")
	if err != nil {
		return nil, err
	}
	m := &EvalShare{Party: r.str(), Key: r.bytes(), Cts: r.list()}
	return m, r.done("evaluation share")
}

// EvalSwitch asks every key holder for PCKS shares of the summed test
// partial logits towards the label holder's key.
type EvalSwitch struct {
	Rows int
	Key  []byte
	Cts  [][]byte
}

// MarshalBinary encodes the message.
func (m *EvalSwitch) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagEvalSwitch}}
	w.i64(m.Rows)
	w.bytes(m.Key)
	w.list(m.Cts)
	return w.b, nil
}

// UnmarshalEvalSwitch decodes an EvalSwitch.
func UnmarshalEvalSwitch(data []byte) (*EvalSwitch, error) {
	r, err := openMsg(data, tagEvalSwitch, "evaluation switch")
	if err != nil {
		return nil, err
	}
	m := &EvalSwitch{Rows: r.i64(), Key: r.bytes(), Cts: r.list()}
	return m, r.done("evaluation switch")
}

// EvalSwitchShares carries one key holder's PCKS shares.
type EvalSwitchShares struct {
	Party  string
	Shares [][]byte
}

// MarshalBinary encodes the message.
func (m *EvalSwitchShares) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagEvalSwitchShares}}
	w.str(m.Party)
	w.list(m.Shares)
	return w.b, nil
}

// UnmarshalEvalSwitchShares decodes EvalSwitchShares.
func UnmarshalEvalSwitchShares(data []byte) (*EvalSwitchShares, error) {
	r, err := openMsg(data, tagEvalSwitchShares, "evaluation switch shares")
	if err != nil {
		return nil, err
	}
	m := &EvalSwitchShares{Party: r.str(), Shares: r.list()}
	return m, r.done("evaluation switch shares")
}

// EvalResult carries Σ_k u_k on the test rows under the label holder's key.
type EvalResult struct {
	Rows int
	Cts  [][]byte
}

// MarshalBinary encodes the message.
func (m *EvalResult) MarshalBinary() ([]byte, error) {
	w := &writer{b: []byte{tagEvalResult}}
	w.i64(m.Rows)
	w.list(m.Cts)
	return w.b, nil
}

// UnmarshalEvalResult decodes an EvalResult.
func UnmarshalEvalResult(data []byte) (*EvalResult, error) {
	r, err := openMsg(data, tagEvalResult, "evaluation result")
	if err != nil {
		return nil, err
	}
	m := &EvalResult{Rows: r.i64(), Cts: r.list()}
	return m, r.done("evaluation result")
}

// evalCts is the number of slot-packed ciphertexts for rows values.
func evalCts(params *he.Params, rows int) int {
	return (rows + params.MaxSlots() - 1) / params.MaxSlots()
}

// MaxEvalRows bounds the test split (1M rows: 245 ciphertexts at LogN 13).
const MaxEvalRows = 1 << 20

// coordinator-side evaluation state.
type evalState struct {
	rows   int
	key    []byte
	shares map[string]*EvalShare
	sum    []*rlwe.Ciphertext
	sums   []*he.ShareSum
	got    map[string]bool
}

// EvalStart begins the test-split evaluation of rows test rows; training
// must be over and the collective key set up.
func (c *Coordinator) EvalStart(rows int) ([]byte, error) {
	if !c.pkOK || c.inIter {
		return nil, fmt.Errorf("lr: coordinator: evaluation needs a collective key and no iteration in flight")
	}
	if !c.done && c.next < c.cfg.Epochs*c.sch.numBatches {
		return nil, fmt.Errorf("lr: coordinator: evaluation before training is over (iteration %d)", c.next)
	}
	if rows < 1 || rows > MaxEvalRows {
		return nil, fmt.Errorf("lr: coordinator: %d test rows outside [1, %d]", rows, MaxEvalRows)
	}
	c.eval = &evalState{rows: rows, shares: map[string]*EvalShare{}}
	return (&EvalStart{Rows: rows}).MarshalBinary()
}

// AddEvalShare adds a party's answer to EvalStart.
func (c *Coordinator) AddEvalShare(msg []byte) error {
	if c.eval == nil || c.eval.sum != nil {
		return fmt.Errorf("lr: coordinator: evaluation share out of order")
	}
	m, err := UnmarshalEvalShare(msg)
	if err != nil {
		return err
	}
	if !c.isParty(m.Party) || c.eval.shares[m.Party] != nil {
		return fmt.Errorf("lr: coordinator: unexpected or repeated evaluation share from %q", m.Party)
	}
	if m.Party == c.parties[0] {
		if len(m.Cts) != 0 {
			return fmt.Errorf("lr: coordinator: the label holder must not send test logits")
		}
		if _, err := c.params.UnmarshalPublicKey(m.Key); err != nil {
			return fmt.Errorf("lr: coordinator: label holder's evaluation key: %w", err)
		}
	} else {
		if len(m.Key) != 0 || len(m.Cts) != evalCts(c.params, c.eval.rows) {
			return fmt.Errorf("lr: coordinator: %q sent %d test ciphertexts, want %d", m.Party, len(m.Cts), evalCts(c.params, c.eval.rows))
		}
		for i, b := range m.Cts {
			if _, err := c.params.UnmarshalCiphertext(b, c.params.MaxLevel()); err != nil {
				return fmt.Errorf("lr: coordinator: test ciphertext %d from %q: %w", i, m.Party, err)
			}
		}
	}
	c.eval.shares[m.Party] = m
	return nil
}

// EvalSwitch sums the providers' test logits and returns the PCKS request
// for every party; the coordinator adds its own shares.
func (c *Coordinator) EvalSwitch(ctx context.Context) ([]byte, error) {
	if c.eval == nil || len(c.eval.shares) != len(c.parties) || c.eval.sum != nil {
		return nil, fmt.Errorf("lr: coordinator: evaluation switch before every party answered")
	}
	eval := hefloat.NewEvaluator(c.params.Parameters, nil)
	n := evalCts(c.params, c.eval.rows)
	req := &EvalSwitch{Rows: c.eval.rows, Key: c.eval.shares[c.parties[0]].Key, Cts: make([][]byte, n)}
	c.eval.sum = make([]*rlwe.Ciphertext, n)
	for i := 0; i < n; i++ {
		var acc *rlwe.Ciphertext
		for _, p := range c.parties[1:] {
			ct, err := c.params.UnmarshalCiphertext(c.eval.shares[p].Cts[i], c.params.MaxLevel())
			if err != nil {
				return nil, err
			}
			if acc == nil {
				acc = ct
			} else if err := eval.Add(acc, ct, acc); err != nil {
				return nil, fmt.Errorf("lr: coordinator: sum test logits: %w", err)
			}
		}
		c.eval.sum[i] = acc
		var err error
		if req.Cts[i], err = c.params.MarshalCiphertext(acc); err != nil {
			return nil, err
		}
	}
	c.eval.sums = make([]*he.ShareSum, n)
	for i := range c.eval.sums {
		var err error
		if c.eval.sums[i], err = he.NewPCKSShareSum(c.params, c.params.MaxLevel(), len(c.parties)+1); err != nil {
			return nil, err
		}
	}
	c.eval.got = map[string]bool{}
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	own, err := pcksShares(ctx, c.params, c.kp, "\x00coordinator", b)
	if err != nil {
		return nil, err
	}
	if err := c.addSwitchShares(own); err != nil {
		return nil, err
	}
	c.eval.key = req.Key
	return b, nil
}

// AddEvalSwitchShares adds one party's PCKS shares.
func (c *Coordinator) AddEvalSwitchShares(msg []byte) error {
	m, err := UnmarshalEvalSwitchShares(msg)
	if err != nil {
		return err
	}
	if !c.isParty(m.Party) {
		return fmt.Errorf("lr: coordinator: evaluation shares from unknown party %q", m.Party)
	}
	return c.addSwitchShares(msg)
}

func (c *Coordinator) addSwitchShares(msg []byte) error {
	m, err := UnmarshalEvalSwitchShares(msg)
	if err != nil {
		return err
	}
	if c.eval == nil || c.eval.sums == nil || c.eval.got[m.Party] {
		return fmt.Errorf("lr: coordinator: unexpected evaluation shares from %q", m.Party)
	}
	if len(m.Shares) != len(c.eval.sums) {
		return fmt.Errorf("lr: coordinator: %q sent %d evaluation shares, want %d", m.Party, len(m.Shares), len(c.eval.sums))
	}
	for i, sh := range m.Shares {
		if err := c.eval.sums[i].Add(sh); err != nil {
			return fmt.Errorf("lr: coordinator: evaluation share %d from %q: %w", i, m.Party, err)
		}
	}
	c.eval.got[m.Party] = true
	return nil
}

// EvalResult applies the summed PCKS shares and returns the message for the
// label holder: Σ_k u_k on the test rows under the label holder's key.
func (c *Coordinator) EvalResult() ([]byte, error) {
	if c.eval == nil || c.eval.sums == nil || len(c.eval.got) != len(c.parties)+1 {
		return nil, fmt.Errorf("lr: coordinator: evaluation result before every key holder's shares")
	}
	out := &EvalResult{Rows: c.eval.rows, Cts: make([][]byte, len(c.eval.sum))}
	for i, ct := range c.eval.sum {
		s, err := c.eval.sums[i].MarshalBinary()
		if err != nil {
			return nil, err
		}
		sw, err := c.params.SwitchPCKS(ct, s)
		if err != nil {
			return nil, fmt.Errorf("lr: coordinator: %w", err)
		}
		if out.Cts[i], err = c.params.MarshalCiphertext(sw); err != nil {
			return nil, err
		}
	}
	c.eval = nil
	return out.MarshalBinary()
}

func pcksShares(ctx context.Context, params *he.Params, kp *he.KeyParty, name string, msg []byte) ([]byte, error) {
	req, err := UnmarshalEvalSwitch(msg)
	if err != nil {
		return nil, err
	}
	if req.Rows < 1 || req.Rows > MaxEvalRows || len(req.Cts) != evalCts(params, req.Rows) {
		return nil, fmt.Errorf("lr: %q: evaluation switch has %d ciphertexts for %d rows", name, len(req.Cts), req.Rows)
	}
	to, err := params.UnmarshalPublicKey(req.Key)
	if err != nil {
		return nil, fmt.Errorf("lr: %q: evaluation recipient key: %w", name, err)
	}
	cts := make([]*rlwe.Ciphertext, len(req.Cts))
	for i, b := range req.Cts {
		if cts[i], err = params.UnmarshalCiphertext(b, params.MaxLevel()); err != nil {
			return nil, fmt.Errorf("lr: %q: evaluation ciphertext %d: %w", name, i, err)
		}
	}
	shares, err := kp.PCKSShares(ctx, cts, to)
	if err != nil {
		return nil, fmt.Errorf("lr: %q: %w", name, err)
	}
	return (&EvalSwitchShares{Party: name, Shares: shares}).MarshalBinary()
}

// partialLogits is X·w (+ the intercept for the label holder) on rows rows.
func (p *party) partialLogits(X [][]float64, rows int) ([]float64, error) {
	k := len(p.Weights())
	if len(X) != k {
		return nil, fmt.Errorf("lr: party %q: %d test columns given, model has %d", p.name, len(X), k)
	}
	z := make([]float64, rows)
	b := p.Intercept()
	for i := range z {
		z[i] = b
	}
	for j, col := range X {
		if len(col) != rows {
			return nil, fmt.Errorf("lr: party %q: test column %d has %d rows, want %d", p.name, j, len(col), rows)
		}
		for i, x := range col {
			z[i] += p.w[j] * x
		}
	}
	return z, nil
}

// EvalShare answers EvalStart. testX is the party's own test columns
// (column-major, in training column order, aligned test rows). The label
// holder returns a fresh recipient key; a provider its encrypted test
// partial logits, once per collective key.
func (p *party) EvalShare(ctx context.Context, msg []byte, testX [][]float64) ([]byte, error) {
	if p.stage != stageReady {
		return nil, fmt.Errorf("lr: party %q: evaluation out of order", p.name)
	}
	m, err := UnmarshalEvalStart(msg)
	if err != nil {
		return nil, err
	}
	if m.Rows < 1 || m.Rows > MaxEvalRows {
		return nil, fmt.Errorf("lr: party %q: %d test rows outside [1, %d]", p.name, m.Rows, MaxEvalRows)
	}
	if p.evalDone {
		return nil, fmt.Errorf("lr: party %q: test logits already released under this key", p.name)
	}
	z, err := p.partialLogits(testX, m.Rows)
	if err != nil {
		return nil, err
	}
	out := &EvalShare{Party: p.name}
	if p.isLabel {
		p.evalKey = he.NewRecipientKey(p.params)
		p.evalOwn = z
		if out.Key, err = p.evalKey.PublicKey().MarshalBinary(); err != nil {
			return nil, err
		}
	} else {
		slots := p.params.MaxSlots()
		vecs := make([][]float64, evalCts(p.params, m.Rows))
		for i := range vecs {
			vecs[i] = z[i*slots : min((i+1)*slots, m.Rows)]
		}
		cts, err := p.enc.EncryptSlotsBatch(ctx, vecs)
		if err != nil {
			return nil, fmt.Errorf("lr: party %q: encrypt test logits: %w", p.name, err)
		}
		out.Cts = make([][]byte, len(cts))
		for i, ct := range cts {
			if out.Cts[i], err = p.params.MarshalCiphertext(ct); err != nil {
				return nil, err
			}
		}
	}
	p.evalDone = true
	return out.MarshalBinary()
}

// EvalSwitchShares answers EvalSwitch with this party's PCKS shares.
func (p *party) EvalSwitchShares(ctx context.Context, msg []byte) ([]byte, error) {
	if p.stage != stageReady || !p.evalDone {
		return nil, fmt.Errorf("lr: party %q: evaluation switch out of order", p.name)
	}
	return pcksShares(ctx, p.params, p.kp, p.name, msg)
}

// TestLogits opens the EvalResult with the label holder's recipient key
// and adds its own partial logits and intercept: the model's logits on the
// test rows, in test-row order.
func (p *LabelParty) TestLogits(msg []byte) ([]float64, error) {
	if p.evalKey == nil || p.evalOwn == nil {
		return nil, fmt.Errorf("lr: party %q: evaluation result before evaluation start", p.name)
	}
	m, err := UnmarshalEvalResult(msg)
	if err != nil {
		return nil, err
	}
	rows := len(p.evalOwn)
	if m.Rows != rows || len(m.Cts) != evalCts(p.params, rows) {
		return nil, fmt.Errorf("lr: party %q: evaluation result for %d rows in %d ciphertexts, want %d rows", p.name, m.Rows, len(m.Cts), rows)
	}
	z := append([]float64(nil), p.evalOwn...)
	slots := p.params.MaxSlots()
	for i, b := range m.Cts {
		ct, err := p.params.UnmarshalCiphertext(b, p.params.MaxLevel())
		if err != nil {
			return nil, fmt.Errorf("lr: party %q: evaluation result %d: %w", p.name, i, err)
		}
		v, err := p.evalKey.DecryptSlots(ct)
		if err != nil {
			return nil, fmt.Errorf("lr: party %q: decrypt evaluation result %d: %w", p.name, i, err)
		}
		for j := i * slots; j < min((i+1)*slots, rows); j++ {
			z[j] += v[j-i*slots]
		}
	}
	p.evalKey, p.evalOwn = nil, nil
	return z, nil
}
