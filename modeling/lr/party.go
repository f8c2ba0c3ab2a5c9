package lr

import (
	"context"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"veil/mpc/he"
)

// LabelData is the label holder's local data: 0/1 labels and optionally its
// own feature columns (column-major, X[j][i] = feature j of row i). Rows are
// in the aligned (PSI) order shared by all parties.
type LabelData struct {
	Name string
	Y    []float64
	X    [][]float64
}

// FeatureData is a provider's local data (column-major, aligned rows).
type FeatureData struct {
	Name string
	X    [][]float64
}

// MaxCacheBytes bounds the memory a party spends on pre-encoded feature
// plaintexts (2 primes × N × 8 bytes each); above it they are re-encoded
// every iteration.
const MaxCacheBytes = 1 << 30

type stage int

const (
	stageNew stage = iota
	stageKeyed
	stageReady
	stageShared
	stageGradient
)

// party is the logic shared by the label holder and the providers. All
// methods consume and produce serialized messages.
type party struct {
	name    string
	isLabel bool
	cols    [][]float64 // features; the label party's last column is the intercept (all ones)
	y       []float64
	w       []float64
	rows    int

	cfg      Config
	params   *he.Params
	kp       *he.KeyParty
	enc      *he.Encryptor
	sch      *schedule
	m, kg    int
	parties  []string
	stage    stage
	next     int // next iteration to run
	restored bool

	// per-iteration state
	batch  int
	share  []float64 // this party's residual share on the batch rows
	masks  []*he.CoeffMask
	counts []int
	grads  []*rlwe.Ciphertext

	cache   map[int][][]*rlwe.Plaintext // batch → [group][block]
	cacheOK bool

	// test-split evaluation (eval.go)
	evalDone bool
	evalKey  *he.RecipientKey
	evalOwn  []float64
}

// LabelParty is the label holder: it holds y (never sent) and its features.
type LabelParty struct{ party }

// FeatureParty is a data provider holding feature columns only.
type FeatureParty struct{ party }

// NewLabelParty prepares the label holder.
func NewLabelParty(d *LabelData) (*LabelParty, error) {
	if d == nil || d.Name == "" {
		return nil, fmt.Errorf("lr: label party needs a name")
	}
	n := len(d.Y)
	if err := checkLabels(d.Y); err != nil {
		return nil, err
	}
	if err := checkColumns(d.X, n, d.Name); err != nil {
		return nil, err
	}
	ones := make([]float64, n)
	for i := range ones {
		ones[i] = 1
	}
	cols := append(append([][]float64(nil), d.X...), ones)
	return &LabelParty{party{name: d.Name, isLabel: true, cols: cols, y: d.Y, rows: n, w: make([]float64, len(cols))}}, nil
}

// NewFeatureParty prepares a provider.
func NewFeatureParty(d *FeatureData) (*FeatureParty, error) {
	if d == nil || d.Name == "" {
		return nil, fmt.Errorf("lr: feature party needs a name")
	}
	if len(d.X) == 0 {
		return nil, fmt.Errorf("lr: feature party %q has no feature columns", d.Name)
	}
	n := len(d.X[0])
	if err := checkColumns(d.X, n, d.Name); err != nil {
		return nil, err
	}
	return &FeatureParty{party{name: d.Name, cols: d.X, rows: n, w: make([]float64, len(d.X))}}, nil
}

func checkColumns(X [][]float64, n int, who string) error {
	for j, col := range X {
		if len(col) != n {
			return fmt.Errorf("lr: party %q: column %d has %d rows, want %d", who, j, len(col), n)
		}
		for i, v := range col {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("lr: party %q: column %d row %d is not finite (impute before training)", who, j, i)
			}
		}
	}
	return nil
}

// Name returns the party's name.
func (p *party) Name() string { return p.name }

// Weights returns the party's current weights for its feature columns.
func (p *party) Weights() []float64 {
	k := len(p.w)
	if p.isLabel {
		k--
	}
	return append([]float64(nil), p.w[:k]...)
}

// Intercept returns the model's intercept (label party only; 0 otherwise).
func (p *party) Intercept() float64 {
	if !p.isLabel {
		return 0
	}
	return p.w[len(p.w)-1]
}

// PartialLogits returns X·w for this party's own columns of another data set
// (e.g. its test rows), including the intercept for the label party.
func (p *party) PartialLogits(X [][]float64) ([]float64, error) {
	k := len(p.Weights())
	if len(X) != k {
		return nil, fmt.Errorf("lr: party %q: %d columns given, model has %d", p.name, len(X), k)
	}
	n := 0
	if k > 0 {
		n = len(X[0])
	}
	z := make([]float64, n)
	for i := range z {
		z[i] = p.Intercept()
	}
	for j := 0; j < k; j++ {
		for i, x := range X[j] {
			z[i] += p.w[j] * x
		}
	}
	return z, nil
}

// Init consumes the Setup message and returns this party's CKG share.
func (p *party) Init(setup []byte) ([]byte, error) {
	if p.stage != stageNew {
		return nil, fmt.Errorf("lr: party %q: setup received twice", p.name)
	}
	s, err := UnmarshalSetup(setup)
	if err != nil {
		return nil, err
	}
	cfg := s.Config.withDefaults()
	if err := cfg.validate(s.Rows); err != nil {
		return nil, err
	}
	if s.Rows != p.rows {
		return nil, fmt.Errorf("lr: party %q holds %d aligned rows, the job has %d", p.name, p.rows, s.Rows)
	}
	found := false
	for _, n := range s.Parties {
		found = found || n == p.name
	}
	if !found {
		return nil, fmt.Errorf("lr: party %q is not in the job's party list", p.name)
	}
	if s.StartIteration != p.next {
		return nil, fmt.Errorf("lr: party %q is at iteration %d, the job resumes at %d", p.name, p.next, s.StartIteration)
	}
	params, err := he.ByName(cfg.ParamSet)
	if err != nil {
		return nil, err
	}
	p.cfg, p.params, p.parties = cfg, params, s.Parties
	p.kg = cfg.FeaturesPerCiphertext
	p.m = params.N() / p.kg
	p.sch = newSchedule(p.rows, cfg)
	p.kp = he.NewKeyParty(params)
	p.cache = map[int][][]*rlwe.Plaintext{}
	groups := (len(p.cols) + p.kg - 1) / p.kg
	blocks := 0
	for b := 0; b < p.sch.numBatches; b++ {
		blocks += (p.sch.size(b) + p.m - 1) / p.m
	}
	p.cacheOK = groups*blocks*2*params.N()*8 <= MaxCacheBytes
	share, err := p.kp.GenCKGShare(s.CRSSeed)
	if err != nil {
		return nil, fmt.Errorf("lr: party %q: %w", p.name, err)
	}
	p.stage = stageKeyed
	return (&KeyShare{Party: p.name, Share: share}).MarshalBinary()
}

// SetPublicKey consumes the collective public key.
func (p *party) SetPublicKey(msg []byte) error {
	if p.stage != stageKeyed {
		return fmt.Errorf("lr: party %q: public key out of order", p.name)
	}
	m, err := UnmarshalPublicKeyMsg(msg)
	if err != nil {
		return err
	}
	pk, err := p.params.UnmarshalPublicKey(m.Key)
	if err != nil {
		return fmt.Errorf("lr: party %q: %w", p.name, err)
	}
	p.enc = he.NewEncryptor(pk)
	p.stage = stageReady
	return nil
}

// ShareResidual consumes IterStart and returns this party's encrypted
// residual share for the batch.
func (p *party) ShareResidual(ctx context.Context, msg []byte) ([]byte, error) {
	if p.stage != stageReady {
		return nil, fmt.Errorf("lr: party %q: iteration start out of order", p.name)
	}
	m, err := UnmarshalIterStart(msg)
	if err != nil {
		return nil, err
	}
	if m.Iteration != p.next {
		return nil, fmt.Errorf("lr: party %q: asked for iteration %d, expected %d", p.name, m.Iteration, p.next)
	}
	_, b := p.sch.at(m.Iteration)
	p.batch = b
	B := p.sch.size(b)
	p.share = make([]float64, B)
	for i := 0; i < B; i++ {
		r := p.sch.row(b, i)
		var u float64
		for j, col := range p.cols {
			u += p.w[j] * col[r]
		}
		p.share[i] = 0.25 * u
		if p.isLabel {
			p.share[i] += 0.5 - p.y[r]
		}
	}
	nb := (B + p.m - 1) / p.m
	vecs := make([][]float64, nb)
	for k := range vecs {
		vecs[k] = p.share[k*p.m : min((k+1)*p.m, B)]
	}
	cts, err := p.enc.EncryptCoeffsBatch(ctx, vecs)
	if err != nil {
		return nil, fmt.Errorf("lr: party %q: encrypt residual share: %w", p.name, err)
	}
	out := &ResidualShare{Party: p.name, Iteration: m.Iteration, Cts: make([][]byte, nb)}
	for k, ct := range cts {
		if out.Cts[k], err = p.params.MarshalCiphertext(ct); err != nil {
			return nil, err
		}
	}
	p.stage = stageShared
	return out.MarshalBinary()
}

// targets returns the coefficient positions of count gradient entries.
func targets(m, count int) []int {
	pos := make([]int, count)
	for jj := range pos {
		pos[jj] = jj*m + m - 1
	}
	return pos
}

// encodeBlock encodes, reversed within each kg-block, the given columns on
// block k of batch b, divided by the batch size (coefficient packing).
func (p *party) encodeBlock(b, k int, columns [][]float64) (*rlwe.Plaintext, error) {
	B := p.sch.size(b)
	lvl := p.params.MaxLevel()
	vals := make([]float64, p.params.N())
	lo, hi := k*p.m, min((k+1)*p.m, B)
	inv := 1 / float64(B)
	for jj, col := range columns {
		base := jj*p.m + p.m - 1
		for i := lo; i < hi; i++ {
			vals[base-(i-lo)] = col[p.sch.row(b, i)] * inv
		}
	}
	// Scale q_top: after the product is rescaled by q_top, the gradient is
	// back at the residual's scale.
	pt, err := p.params.EncodeCoeffsMontgomery(vals, lvl, float64(p.params.Q()[lvl]))
	if err != nil {
		return nil, fmt.Errorf("lr: encode features: %w", err)
	}
	return pt, nil
}

func (p *party) groupColumns(g int) [][]float64 {
	return p.cols[g*p.kg : min((g+1)*p.kg, len(p.cols))]
}

// featurePlaintexts returns the plaintexts of batch b ([group][block]),
// cached when they fit in MaxCacheBytes.
func (p *party) featurePlaintexts(ctx context.Context, b int) ([][]*rlwe.Plaintext, error) {
	if pts, ok := p.cache[b]; ok {
		return pts, nil
	}
	groups := (len(p.cols) + p.kg - 1) / p.kg
	nb := (p.sch.size(b) + p.m - 1) / p.m
	pts := make([][]*rlwe.Plaintext, groups)
	for g := range pts {
		pts[g] = make([]*rlwe.Plaintext, nb)
	}
	err := he.Parallel(ctx, groups*nb, func() (struct{}, error) { return struct{}{}, nil },
		func(_ struct{}, idx int) error {
			g, k := idx/nb, idx%nb
			pt, err := p.encodeBlock(b, k, p.groupColumns(g))
			pts[g][k] = pt
			return err
		})
	if err != nil {
		return nil, err
	}
	if p.cacheOK {
		p.cache[b] = pts
	}
	return pts, nil
}

// Gradient consumes Enc(d) and returns this party's masked encrypted
// gradient and its encrypted loss term ⟨d, share⟩/B + λ/4·‖w‖².
func (p *party) Gradient(ctx context.Context, msg []byte) ([]byte, error) {
	if p.stage != stageShared {
		return nil, fmt.Errorf("lr: party %q: residual out of order", p.name)
	}
	m, err := UnmarshalResidual(msg)
	if err != nil {
		return nil, err
	}
	if m.Iteration != p.next {
		return nil, fmt.Errorf("lr: party %q: residual for iteration %d, expected %d", p.name, m.Iteration, p.next)
	}
	B := p.sch.size(p.batch)
	nb := (B + p.m - 1) / p.m
	if len(m.Cts) != nb {
		return nil, fmt.Errorf("lr: party %q: residual has %d ciphertexts, want %d", p.name, len(m.Cts), nb)
	}
	top := p.params.MaxLevel()
	dcts := make([]*rlwe.Ciphertext, nb)
	for k, b := range m.Cts {
		if dcts[k], err = p.params.UnmarshalCiphertext(b, top); err != nil {
			return nil, fmt.Errorf("lr: party %q: residual ciphertext %d: %w", p.name, k, err)
		}
	}
	pts, err := p.featurePlaintexts(ctx, p.batch)
	if err != nil {
		return nil, err
	}
	groups := len(pts)
	out := make([]*rlwe.Ciphertext, groups+1) // last: loss term
	eval := hefloat.NewEvaluator(p.params.Parameters, nil)
	rq := p.params.RingQ().AtLevel(top)
	err = he.Parallel(ctx, groups+1, func() (*hefloat.Evaluator, error) { return eval.ShallowCopy(), nil },
		func(ev *hefloat.Evaluator, g int) error {
			// acc = Σ_k Enc(d_k) ⊙ PX[g][k], accumulated in the NTT domain
			// with Montgomery-form plaintexts (one fused multiply-add per
			// polynomial, no temporaries).
			acc := hefloat.NewCiphertext(p.params.Parameters, 1, top)
			*acc.MetaData = *dcts[0].MetaData
			for k := 0; k < nb; k++ {
				var pt *rlwe.Plaintext
				if g < groups {
					pt = pts[g][k]
				} else {
					var err error
					if pt, err = p.encodeShareBlock(k); err != nil {
						return err
					}
				}
				if k == 0 {
					acc.Scale = dcts[0].Scale.Mul(pt.Scale)
				}
				rq.MulCoeffsMontgomeryThenAdd(dcts[k].Value[0], pt.Value, acc.Value[0])
				rq.MulCoeffsMontgomeryThenAdd(dcts[k].Value[1], pt.Value, acc.Value[1])
			}
			if err := ev.Rescale(acc, acc); err != nil {
				return fmt.Errorf("lr: rescale: %w", err)
			}
			out[g] = acc
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("lr: party %q: gradient: %w", p.name, err)
	}
	// Mask every gradient entry with a one-time pad only this party knows.
	p.masks = make([]*he.CoeffMask, groups)
	p.counts = make([]int, groups)
	res := &EncryptedGradient{Party: p.name, Iteration: m.Iteration, Cts: make([][]byte, groups), Counts: p.counts}
	for g := 0; g < groups; g++ {
		p.counts[g] = len(p.groupColumns(g))
		if p.masks[g], err = p.params.NewCoeffMask(targets(p.m, p.counts[g])); err != nil {
			return nil, err
		}
		if err := p.params.ApplyMask(out[g], p.masks[g]); err != nil {
			return nil, err
		}
		if res.Cts[g], err = p.params.MarshalCiphertext(out[g]); err != nil {
			return nil, err
		}
	}
	if err := p.params.AddToCoeff(out[groups], p.m-1, 0.25*p.cfg.L2*sumSquares(p.Weights())); err != nil {
		return nil, err
	}
	if res.Loss, err = p.params.MarshalCiphertext(out[groups]); err != nil {
		return nil, err
	}
	p.grads = out[:groups]
	p.stage = stageGradient
	return res.MarshalBinary()
}

func (p *party) encodeShareBlock(k int) (*rlwe.Plaintext, error) {
	// The share is indexed by batch position, not by row: wrap it in an
	// identity "batch" by encoding directly.
	B := len(p.share)
	lvl := p.params.MaxLevel()
	vals := make([]float64, p.params.N())
	lo, hi := k*p.m, min((k+1)*p.m, B)
	inv := 1 / float64(B)
	for i := lo; i < hi; i++ {
		vals[p.m-1-(i-lo)] = p.share[i] * inv
	}
	pt, err := p.params.EncodeCoeffsMontgomery(vals, lvl, float64(p.params.Q()[lvl]))
	if err != nil {
		return nil, fmt.Errorf("lr: encode loss term: %w", err)
	}
	return pt, nil
}

func sumSquares(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return s
}

// DecryptShares returns this party's decryption shares for a request. The
// positions each share may open are fixed by the protocol (Count entries at
// the packing's target coefficients); all other coefficients are randomised.
func (p *party) DecryptShares(ctx context.Context, msg []byte) ([]byte, error) {
	if p.stage != stageGradient {
		return nil, fmt.Errorf("lr: party %q: decrypt request out of order", p.name)
	}
	return decryptShares(ctx, p.params, p.kp, p.name, p.next, p.m, p.kg, msg)
}

func decryptShares(ctx context.Context, params *he.Params, kp *he.KeyParty, name string, iter, m, kg int, msg []byte) ([]byte, error) {
	req, err := UnmarshalDecryptRequest(msg)
	if err != nil {
		return nil, err
	}
	if req.Iteration != iter {
		return nil, fmt.Errorf("lr: %q: decrypt request for iteration %d, expected %d", name, req.Iteration, iter)
	}
	cts := make([]*rlwe.Ciphertext, len(req.Items))
	reveal := make([][]int, len(req.Items))
	for i, it := range req.Items {
		if it.Count < 1 || it.Count > kg {
			return nil, fmt.Errorf("lr: %q: decrypt item %d asks for %d entries (1..%d allowed)", name, i, it.Count, kg)
		}
		if cts[i], err = params.UnmarshalCiphertext(it.Ct, 0); err != nil {
			return nil, fmt.Errorf("lr: %q: decrypt item %d: %w", name, i, err)
		}
		reveal[i] = targets(m, it.Count)
	}
	shares, err := kp.DecryptionShares(ctx, cts, reveal)
	if err != nil {
		return nil, fmt.Errorf("lr: %q: %w", name, err)
	}
	return (&DecryptShares{Party: name, Iteration: iter, Shares: shares}).MarshalBinary()
}

// Update consumes the Result: it opens its own gradient with the summed
// shares, removes its mask and takes the gradient step.
func (p *party) Update(msg []byte) error {
	if p.stage != stageGradient {
		return fmt.Errorf("lr: party %q: result out of order", p.name)
	}
	m, err := UnmarshalResult(msg)
	if err != nil {
		return err
	}
	if m.Party != p.name || m.Iteration != p.next {
		return fmt.Errorf("lr: party %q: result for %q iteration %d, expected iteration %d", p.name, m.Party, m.Iteration, p.next)
	}
	if len(m.ShareSums) != len(p.grads) {
		return fmt.Errorf("lr: party %q: %d share sums for %d gradient ciphertexts", p.name, len(m.ShareSums), len(p.grads))
	}
	g := make([]float64, 0, len(p.w))
	for i, ct := range p.grads {
		pt, err := p.params.OpenCKS(ct, m.ShareSums[i])
		if err != nil {
			return fmt.Errorf("lr: party %q: open gradient %d: %w", p.name, i, err)
		}
		v, err := p.params.DecodeCoeffs(pt, p.masks[i].Positions(), p.masks[i])
		if err != nil {
			return fmt.Errorf("lr: party %q: decode gradient %d: %w", p.name, i, err)
		}
		g = append(g, v...)
	}
	eta := stepSize(p.cfg, p.next)
	reg := len(p.w)
	if p.isLabel {
		reg-- // no penalty on the intercept
	}
	for j := range p.w {
		step := g[j]
		if j < reg {
			step += p.cfg.L2 * p.w[j]
		}
		p.w[j] -= eta * step
	}
	p.next++
	p.grads, p.masks, p.share = nil, nil, nil
	p.stage = stageReady
	return nil
}

// Iteration returns the number of completed iterations.
func (p *party) Iteration() int { return p.next }

const snapshotMagic = "VLRP1"

// Snapshot serializes the party's state after a completed iteration: its
// name, the next iteration and its weights. It holds no key material: a
// resumed job sets up a fresh collective key, since no ciphertext outlives an
// iteration. The snapshot is the party's own secret (its weights).
func (p *party) Snapshot() ([]byte, error) {
	if p.stage != stageReady && p.stage != stageNew {
		return nil, fmt.Errorf("lr: party %q: snapshot only between iterations", p.name)
	}
	w := &writer{b: []byte(snapshotMagic)}
	w.str(p.name)
	w.i64(p.next)
	w.u64(uint64(len(p.w)))
	for _, x := range p.w {
		w.f64(x)
	}
	return w.b, nil
}

// Restore loads a snapshot into a freshly constructed party (same data)
// before Init; the job must then resume at the snapshot's iteration.
func (p *party) Restore(snap []byte) error {
	if p.stage != stageNew {
		return fmt.Errorf("lr: party %q: restore only before setup", p.name)
	}
	if len(snap) < len(snapshotMagic) || string(snap[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("lr: party %q: not a party snapshot", p.name)
	}
	r := &reader{b: snap[len(snapshotMagic):]}
	name := r.str()
	next := r.i64()
	n := r.count(8)
	w := make([]float64, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		w = append(w, r.f64())
	}
	if err := r.done("party snapshot"); err != nil {
		return err
	}
	if name != p.name {
		return fmt.Errorf("lr: snapshot of party %q loaded into party %q", name, p.name)
	}
	if len(w) != len(p.w) || next < 0 {
		return fmt.Errorf("lr: party %q: snapshot has %d weights at iteration %d, the party has %d columns", p.name, len(w), next, len(p.w))
	}
	for _, x := range w {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("lr: party %q: snapshot has a non-finite weight", p.name)
		}
	}
	p.w, p.next, p.restored = w, next, true
	return nil
}
