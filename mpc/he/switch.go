package he

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"runtime"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// Collective decryption (CKS to the zero key) and collective public-key switch
// (PCKS). Every share generated here carries flooding noise of standard
// deviation Params.SmudgingSigma() (≥ MinSmudgingSigma, enforced by New): the
// protocols are only ever constructed from the parameter set's σ, and there is
// no API to produce a share without it.

func (p *Params) checkCiphertext(ct *rlwe.Ciphertext) error {
	if ct == nil || ct.MetaData == nil || len(ct.Value) != 2 {
		return fmt.Errorf("he: ciphertext must be a non-nil degree-1 ciphertext")
	}
	if ct.Value[0].N() != p.N() || ct.Value[1].N() != p.N() {
		return fmt.Errorf("he: %w: ciphertext ring degree %d, parameter set %s has %d", ErrParamsMismatch, ct.Value[0].N(), p.name, p.N())
	}
	if ct.Level() > p.MaxLevel() || ct.Value[1].Level() != ct.Level() {
		return fmt.Errorf("he: %w: ciphertext level %d invalid for %s (max %d)", ErrParamsMismatch, ct.Level(), p.name, p.MaxLevel())
	}
	if !ct.IsNTT || ct.IsMontgomery {
		return fmt.Errorf("he: ciphertext must be in NTT, non-Montgomery form")
	}
	return nil
}

func (p *Params) flooding() ring.DiscreteGaussian {
	return ring.DiscreteGaussian{Sigma: p.sigma, Bound: 6 * p.sigma}
}

// shareWorker holds the per-goroutine protocol instances (lattigo objects are
// not safe for concurrent use).
type shareWorker struct {
	cks     mhe.KeySwitchProtocol
	pcks    mhe.PublicKeySwitchProtocol
	uniform *ring.UniformSampler
	zero    *rlwe.SecretKey
}

func (kp *KeyParty) newShareWorker() (*shareWorker, error) {
	p := kp.params
	if p.sigma < MinSmudgingSigma { // defence in depth: New already refuses this
		return nil, fmt.Errorf("he: refusing to build decryption shares with smudging sigma %g < 2^20", p.sigma)
	}
	cks, err := mhe.NewKeySwitchProtocol(p.Parameters, p.flooding())
	if err != nil {
		return nil, fmt.Errorf("he: CKS protocol: %w", err)
	}
	pcks, err := mhe.NewPublicKeySwitchProtocol(p.Parameters, p.flooding())
	if err != nil {
		return nil, fmt.Errorf("he: PCKS protocol: %w", err)
	}
	prng, err := sampling.NewPRNG()
	if err != nil {
		return nil, fmt.Errorf("he: PRNG: %w", err)
	}
	return &shareWorker{cks: cks, pcks: pcks, uniform: ring.NewUniformSampler(prng, p.RingQ()), zero: rlwe.NewSecretKey(p.Parameters)}, nil
}

func (p *Params) checkReveal(reveal []int) error {
	for _, i := range reveal {
		if i < 0 || i >= p.N() {
			return fmt.Errorf("he: reveal position %d outside [0, %d)", i, p.N())
		}
	}
	return nil
}

// decryptionShare computes s_i·c1 + e_flood (+ uniform noise on every
// coefficient not in reveal, when reveal is non-nil).
func (w *shareWorker) decryptionShare(kp *KeyParty, ct *rlwe.Ciphertext, reveal []int) []byte {
	p := kp.params
	lvl := ct.Level()
	sh := w.cks.AllocateShare(lvl)
	w.cks.GenShare(kp.sk, w.zero, ct, &sh)
	if reveal != nil {
		// Randomise every coefficient except the revealed ones: the party that
		// combines the shares learns nothing about the other coefficients
		// unless every party colludes.
		rq := p.RingQ().AtLevel(lvl)
		u := rq.NewPoly()
		w.uniform.AtLevel(lvl).Read(u)
		for _, pos := range reveal {
			for r := range u.Coeffs {
				u.Coeffs[r][pos] = 0
			}
		}
		rq.NTT(u, u)
		rq.Add(sh.Value, u, sh.Value)
	}
	return p.marshalLevelled(KindCKSShare, sh.Value)
}

// DecryptionShare returns this party's share of the collective decryption of
// ct (CKS to the zero key), with flooding noise. For a coefficient-encoded
// ciphertext, reveal lists the coefficients the decryption may open; all
// others are replaced by uniform noise in this share. reveal == nil opens
// the whole plaintext (slot-encoded results).
func (kp *KeyParty) DecryptionShare(ct *rlwe.Ciphertext, reveal []int) ([]byte, error) {
	out, err := kp.DecryptionShares(context.Background(), []*rlwe.Ciphertext{ct}, [][]int{reveal})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// DecryptionShares is DecryptionShare over many ciphertexts, in parallel.
// reveal is nil (open everything everywhere) or has one entry per ciphertext.
func (kp *KeyParty) DecryptionShares(ctx context.Context, cts []*rlwe.Ciphertext, reveal [][]int) ([][]byte, error) {
	if reveal != nil && len(reveal) != len(cts) {
		return nil, fmt.Errorf("he: %d reveal lists for %d ciphertexts", len(reveal), len(cts))
	}
	for i, ct := range cts {
		if err := kp.params.checkCiphertext(ct); err != nil {
			return nil, fmt.Errorf("he: decryption share for ciphertext %d: %w", i, err)
		}
		if reveal != nil {
			if err := kp.params.checkReveal(reveal[i]); err != nil {
				return nil, err
			}
		}
	}
	out := make([][]byte, len(cts))
	err := Parallel(ctx, len(cts), kp.newShareWorker, func(w *shareWorker, i int) error {
		var rv []int
		if reveal != nil {
			rv = reveal[i]
		}
		out[i] = w.decryptionShare(kp, cts[i], rv)
		return nil
	})
	return out, err
}

// PCKSShare returns this party's share of switching ct from the collective key
// to the recipient's public key, with flooding noise.
func (kp *KeyParty) PCKSShare(ct *rlwe.Ciphertext, to *PublicKey) ([]byte, error) {
	out, err := kp.PCKSShares(context.Background(), []*rlwe.Ciphertext{ct}, to)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// PCKSShares is PCKSShare over many ciphertexts, in parallel.
func (kp *KeyParty) PCKSShares(ctx context.Context, cts []*rlwe.Ciphertext, to *PublicKey) ([][]byte, error) {
	if to == nil || to.params.fp != kp.params.fp {
		return nil, fmt.Errorf("he: PCKS: %w: recipient key is nil or of another parameter set", ErrParamsMismatch)
	}
	for i, ct := range cts {
		if err := kp.params.checkCiphertext(ct); err != nil {
			return nil, fmt.Errorf("he: PCKS share for ciphertext %d: %w", i, err)
		}
	}
	out := make([][]byte, len(cts))
	err := Parallel(ctx, len(cts), kp.newShareWorker, func(w *shareWorker, i int) error {
		sh := w.pcks.AllocateShare(cts[i].Level())
		w.pcks.GenShare(kp.sk, to.pk, cts[i], &sh)
		out[i] = kp.params.marshalLevelled(KindPCKSShare, sh.Value[0], sh.Value[1])
		return nil
	})
	return out, err
}

// ShareSum adds decryption (CKS) or PCKS shares of one ciphertext. It does
// not decrypt anything: the sum of all parties' CKS shares is useless without
// the ciphertext's c0, and in Veil its result goes to the one party allowed
// to open it. It counts shares so an incomplete sum is never used.
type ShareSum struct {
	params  *Params
	kind    Kind
	level   int
	parties int
	got     int
	polys   []ring.Poly
}

// NewDecryptionShareSum expects parties CKS shares at level.
func NewDecryptionShareSum(p *Params, level, parties int) (*ShareSum, error) {
	return newShareSum(p, KindCKSShare, level, parties)
}

// NewPCKSShareSum expects parties PCKS shares at level.
func NewPCKSShareSum(p *Params, level, parties int) (*ShareSum, error) {
	return newShareSum(p, KindPCKSShare, level, parties)
}

func newShareSum(p *Params, k Kind, level, parties int) (*ShareSum, error) {
	if parties < 1 {
		return nil, fmt.Errorf("he: share sum needs at least 1 party")
	}
	if level < 0 || level > p.MaxLevel() {
		return nil, fmt.Errorf("he: share sum level %d outside [0, %d]", level, p.MaxLevel())
	}
	return &ShareSum{params: p, kind: k, level: level, parties: parties}, nil
}

func (k Kind) polyCount() int {
	if k == KindPCKSShare {
		return 2
	}
	return 1
}

// Add parses and adds one share.
func (s *ShareSum) Add(share []byte) error {
	if s.got >= s.parties {
		return fmt.Errorf("he: %s sum: already have all %d shares", s.kind, s.parties)
	}
	polys, err := s.params.unmarshalLevelled(share, s.kind, s.kind.polyCount(), s.level)
	if err != nil {
		return fmt.Errorf("he: %s sum: %w", s.kind, err)
	}
	if s.polys == nil {
		s.polys = polys
	} else {
		rq := s.params.RingQ().AtLevel(s.level)
		for i := range polys {
			rq.Add(s.polys[i], polys[i], s.polys[i])
		}
	}
	s.got++
	return nil
}

// Complete reports whether all shares were added.
func (s *ShareSum) Complete() bool { return s.got == s.parties }

func (s *ShareSum) checkComplete() error {
	if !s.Complete() {
		return fmt.Errorf("he: %s sum: have %d of %d shares", s.kind, s.got, s.parties)
	}
	return nil
}

// MarshalBinary serializes the complete sum (same format as one share), e.g.
// to relay it to the party that will open the ciphertext.
func (s *ShareSum) MarshalBinary() ([]byte, error) {
	if err := s.checkComplete(); err != nil {
		return nil, err
	}
	return s.params.marshalLevelled(s.kind, s.polys...), nil
}

// SwitchPCKS applies this complete sum of PCKS shares to ct, as
// Params.SwitchPCKS does with the sum's MarshalBinary, without serializing
// and re-parsing the sum (for the party that collected the shares itself).
func (s *ShareSum) SwitchPCKS(ct *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if s.kind != KindPCKSShare {
		return nil, fmt.Errorf("he: PCKS switch: the sum is of %s shares", s.kind)
	}
	if err := s.checkComplete(); err != nil {
		return nil, err
	}
	if err := s.params.checkCiphertext(ct); err != nil {
		return nil, err
	}
	if ct.Level() != s.level {
		return nil, fmt.Errorf("he: PCKS switch: %s: unexpected level %d (want %d, the level of the ciphertext)", s.kind, s.level, ct.Level())
	}
	return s.params.switchPCKS(ct, s.polys), nil
}

// OpenCKS combines ct with the complete sum of all parties' decryption shares
// (as produced by ShareSum.MarshalBinary) into the plaintext c0 + Σ shares.
func (p *Params) OpenCKS(ct *rlwe.Ciphertext, shareSum []byte) (*rlwe.Plaintext, error) {
	if err := p.checkCiphertext(ct); err != nil {
		return nil, err
	}
	polys, err := p.unmarshalLevelled(shareSum, KindCKSShare, 1, ct.Level())
	if err != nil {
		return nil, fmt.Errorf("he: open: %w", err)
	}
	pt := rlwe.NewPlaintext(p.Parameters, ct.Level())
	*pt.MetaData = *ct.MetaData
	p.RingQ().AtLevel(ct.Level()).Add(ct.Value[0], polys[0], pt.Value)
	return pt, nil
}

// SwitchPCKS applies the complete sum of PCKS shares to ct; the result is
// encrypted under the recipient's key.
func (p *Params) SwitchPCKS(ct *rlwe.Ciphertext, shareSum []byte) (*rlwe.Ciphertext, error) {
	if err := p.checkCiphertext(ct); err != nil {
		return nil, err
	}
	polys, err := p.unmarshalLevelled(shareSum, KindPCKSShare, 2, ct.Level())
	if err != nil {
		return nil, fmt.Errorf("he: PCKS switch: %w", err)
	}
	return p.switchPCKS(ct, polys), nil
}

// switchPCKS adds the PCKS share sum polys (at ct's level) to ct.
func (p *Params) switchPCKS(ct *rlwe.Ciphertext, polys []ring.Poly) *rlwe.Ciphertext {
	out := rlwe.NewCiphertext(p.Parameters, 1, ct.Level())
	*out.MetaData = *ct.MetaData
	p.RingQ().AtLevel(ct.Level()).Add(ct.Value[0], polys[0], out.Value[0])
	out.Value[1].CopyLvl(ct.Level(), polys[1])
	return out
}

// DecodeSlots decodes an opened slot-encoded plaintext.
func (p *Params) DecodeSlots(pt *rlwe.Plaintext) ([]float64, error) { return p.decodeSlots(pt) }

func (p *Params) decodeSlots(pt *rlwe.Plaintext) ([]float64, error) {
	if !pt.IsBatched {
		return nil, fmt.Errorf("he: decode slots: plaintext is coefficient-encoded")
	}
	if pt.LogDimensions != p.LogMaxDimensions() {
		return nil, fmt.Errorf("he: decode slots: %w: dimensions %v", ErrParamsMismatch, pt.LogDimensions)
	}
	out := make([]float64, p.MaxSlots())
	if err := hefloat.NewEncoder(p.Parameters).Decode(pt, out); err != nil {
		return nil, fmt.Errorf("he: decode slots: %w", err)
	}
	return out, nil
}

// CoeffMask is a one-time pad on chosen coefficients of a level-0 ciphertext:
// uniform values mod q0 that the mask's owner adds before a collective
// decryption and subtracts after it. Nobody else ever sees the mask.
type CoeffMask struct {
	positions []int
	values    []uint64
}

// NewCoeffMask draws a uniform mask for the given coefficient positions.
func (p *Params) NewCoeffMask(positions []int) (*CoeffMask, error) {
	if err := p.checkReveal(positions); err != nil {
		return nil, err
	}
	prng, err := sampling.NewPRNG()
	if err != nil {
		return nil, fmt.Errorf("he: mask PRNG: %w", err)
	}
	rq := p.RingQ().AtLevel(0)
	u := rq.NewPoly()
	ring.NewUniformSampler(prng, rq).Read(u)
	m := &CoeffMask{positions: append([]int(nil), positions...), values: make([]uint64, len(positions))}
	for i, pos := range positions {
		m.values[i] = u.Coeffs[0][pos]
	}
	return m, nil
}

// Positions returns the masked coefficient positions.
func (m *CoeffMask) Positions() []int { return m.positions }

// Apply adds the mask to a level-0 ciphertext in place.
func (p *Params) ApplyMask(ct *rlwe.Ciphertext, m *CoeffMask) error {
	if err := p.checkCiphertext(ct); err != nil {
		return err
	}
	if ct.Level() != 0 {
		return fmt.Errorf("he: masks apply to level-0 ciphertexts, got level %d", ct.Level())
	}
	rq := p.RingQ().AtLevel(0)
	u := rq.NewPoly()
	for i, pos := range m.positions {
		u.Coeffs[0][pos] = m.values[i]
	}
	rq.NTT(u, u)
	rq.Add(ct.Value[0], u, ct.Value[0])
	return nil
}

// DecodeCoeffs decodes the given coefficients of an opened level-0
// coefficient-encoded plaintext, first removing mask (nil: no mask). With a
// mask, positions must be the mask's positions.
func (p *Params) DecodeCoeffs(pt *rlwe.Plaintext, positions []int, mask *CoeffMask) ([]float64, error) {
	if pt.Level() != 0 {
		return nil, fmt.Errorf("he: coefficient decoding needs a level-0 plaintext, got level %d", pt.Level())
	}
	if pt.IsBatched {
		return nil, fmt.Errorf("he: decode coefficients: plaintext is slot-encoded")
	}
	if err := p.checkReveal(positions); err != nil {
		return nil, err
	}
	if mask != nil {
		if len(mask.positions) != len(positions) {
			return nil, fmt.Errorf("he: decode coefficients: mask covers %d positions, asked for %d", len(mask.positions), len(positions))
		}
		for i := range positions {
			if mask.positions[i] != positions[i] {
				return nil, fmt.Errorf("he: decode coefficients: position %d is not the mask's position %d", positions[i], mask.positions[i])
			}
		}
	}
	rq := p.RingQ().AtLevel(0)
	c := rq.NewPoly()
	if pt.IsNTT {
		rq.INTT(pt.Value, c)
	} else {
		c.CopyLvl(0, pt.Value)
	}
	q := p.Q()[0]
	scale, _ := new(big.Float).Set(&pt.Scale.Value).Float64()
	out := make([]float64, len(positions))
	for i, pos := range positions {
		v := c.Coeffs[0][pos]
		if mask != nil {
			v = (v + q - mask.values[i]) % q
		}
		var f float64
		if v > q/2 {
			f = -float64(q - v)
		} else {
			f = float64(v)
		}
		out[i] = f / scale
	}
	return out, nil
}

// Parallel runs fn(state, i) for i in [0, n) on up to GOMAXPROCS goroutines,
// each with its own state from newState (e.g. a ShallowCopy of an evaluator).
// It stops at the first error or when ctx is done.
func Parallel[S any](ctx context.Context, n int, newState func() (S, error), fn func(S, int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		wg       sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr != nil || next >= n {
			return 0, false
		}
		if err := ctx.Err(); err != nil {
			firstErr = err
			return 0, false
		}
		i := next
		next++
		return i, true
	}
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := newState()
			if err != nil {
				fail(err)
				return
			}
			for {
				i, ok := take()
				if !ok {
					return
				}
				if err := fn(st, i); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// AddToCoeff adds v (at the ciphertext's scale) to coefficient pos of a
// level-0 coefficient-encoded ciphertext, e.g. a party's public term of a sum.
func (p *Params) AddToCoeff(ct *rlwe.Ciphertext, pos int, v float64) error {
	if err := p.checkCiphertext(ct); err != nil {
		return err
	}
	if ct.Level() != 0 || pos < 0 || pos >= p.N() {
		return fmt.Errorf("he: add to coefficient %d of a level-%d ciphertext: need level 0 and a position < N", pos, ct.Level())
	}
	scale, _ := new(big.Float).Set(&ct.Scale.Value).Float64()
	x := math.Round(v * scale)
	if math.IsNaN(x) || math.Abs(x) >= float64(p.Q()[0]/2) {
		return fmt.Errorf("he: add to coefficient: value %g does not fit at scale %g", v, scale)
	}
	q := p.Q()[0]
	var c uint64
	if x < 0 {
		c = q - uint64(-x)%q
	} else {
		c = uint64(x) % q
	}
	rq := p.RingQ().AtLevel(0)
	u := rq.NewPoly()
	u.Coeffs[0][pos] = c
	rq.NTT(u, u)
	rq.Add(ct.Value[0], u, ct.Value[0])
	return nil
}
