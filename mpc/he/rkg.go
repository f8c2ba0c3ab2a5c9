package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

// Collective relinearisation key (mhe RKG, two rounds). Only protocols that
// multiply two ciphertexts need it (in Veil: the encrypted pre-screen
// comparison of the scoring sets); the training set has no special primes
// and cannot have one.
//
//	round 1: party i sends r1_i = [-u_i·a + s_i·w + e, s_i·a + e'] (u_i ephemeral)
//	         the aggregator sums them into R1 and sends R1 back to every party
//	round 2: party i sends r2_i = [s_i·R1[0] + e, (u_i - s_i)·R1[1] + e']
//	         the aggregator sums them; (R1, R2) give the relinearisation key
//
// Like CKG shares, RKG shares are RLWE samples: relaying them reveals no
// secret share. The key only lets its holder relinearise products; it
// decrypts nothing.

// Additional object kinds (see codec.go).
const (
	KindRKGRound1 Kind = 7
	KindRKGRound2 Kind = 8
	KindRelinKey  Kind = 9
)

func (p *Params) rkgCRP(seed []byte) (mhe.RelinearizationKeyGenCRP, error) {
	if len(seed) != CRSSeedLen {
		return mhe.RelinearizationKeyGenCRP{}, fmt.Errorf("he: CRS seed must be %d bytes, got %d", CRSSeedLen, len(seed))
	}
	if p.PCount() == 0 {
		return mhe.RelinearizationKeyGenCRP{}, fmt.Errorf("he: parameter set %s has no special primes (P): it cannot have a relinearisation key", p.name)
	}
	crs, err := sampling.NewKeyedPRNG(append([]byte("veil/he rkg\x00"), seed...))
	if err != nil {
		return mhe.RelinearizationKeyGenCRP{}, fmt.Errorf("he: CRS PRNG: %w", err)
	}
	return mhe.NewRelinearizationKeyGenProtocol(p.Parameters).SampleCRP(crs), nil
}

// gadget polynomials in a fixed order: [i][j][0], [i][j][1].
func gadgetPolys(g *rlwe.GadgetCiphertext) []ringqp.Poly {
	var out []ringqp.Poly
	for i := range g.Value {
		for j := range g.Value[i] {
			out = append(out, g.Value[i][j][0], g.Value[i][j][1])
		}
	}
	return out
}

func (p *Params) marshalGadget(k Kind, g *rlwe.GadgetCiphertext) []byte {
	return p.marshalQP(k, gadgetPolys(g)...)
}

// unmarshalGadget parses into dst, whose shape (allocated for this parameter
// set) fixes the expected size.
func (p *Params) unmarshalGadget(data []byte, k Kind, dst *rlwe.GadgetCiphertext) error {
	slots := gadgetPolys(dst)
	polys, err := p.unmarshalQP(data, k, len(slots))
	if err != nil {
		return err
	}
	n := 0
	for i := range dst.Value {
		for j := range dst.Value[i] {
			dst.Value[i][j][0] = polys[n]
			dst.Value[i][j][1] = polys[n+1]
			n += 2
		}
	}
	return nil
}

// RKGSession is one party's state during the two RKG rounds: it keeps the
// ephemeral secret between them. Use it for one key only.
type RKGSession struct {
	kp    *KeyParty
	rkg   mhe.RelinearizationKeyGenProtocol
	crp   mhe.RelinearizationKeyGenCRP
	eph   *rlwe.SecretKey
	round int
}

// NewRKGSession starts this party's part of a collective relinearisation key
// for the CRS seed (the same seed as CKG is fine: the CRPs are derived with
// another domain separator).
func (kp *KeyParty) NewRKGSession(crsSeed []byte) (*RKGSession, error) {
	crp, err := kp.params.rkgCRP(crsSeed)
	if err != nil {
		return nil, err
	}
	return &RKGSession{kp: kp, rkg: mhe.NewRelinearizationKeyGenProtocol(kp.params.Parameters), crp: crp}, nil
}

// Round1 returns this party's round-1 share.
func (s *RKGSession) Round1() ([]byte, error) {
	if s.round != 0 {
		return nil, fmt.Errorf("he: RKG: round 1 already done")
	}
	eph, r1, _ := s.rkg.AllocateShare()
	s.rkg.GenShareRoundOne(s.kp.sk, s.crp, eph, &r1)
	s.eph = eph
	s.round = 1
	return s.kp.params.marshalGadget(KindRKGRound1, &r1.GadgetCiphertext), nil
}

// Round2 returns this party's round-2 share, given the aggregated round-1
// shares of all parties.
func (s *RKGSession) Round2(round1Sum []byte) ([]byte, error) {
	if s.round != 1 {
		return nil, fmt.Errorf("he: RKG: round 2 needs round 1 first (and runs once)")
	}
	_, r1, r2 := s.rkg.AllocateShare()
	if err := s.kp.params.unmarshalGadget(round1Sum, KindRKGRound1, &r1.GadgetCiphertext); err != nil {
		return nil, fmt.Errorf("he: RKG round-1 sum: %w", err)
	}
	s.rkg.GenShareRoundTwo(s.eph, s.kp.sk, r1, &r2)
	s.round = 2
	s.eph = nil
	return s.kp.params.marshalGadget(KindRKGRound2, &r2.GadgetCiphertext), nil
}

// RKGAggregator sums the RKG shares of all parties (the platform runs it).
type RKGAggregator struct {
	params      *Params
	rkg         mhe.RelinearizationKeyGenProtocol
	r1, r2      mhe.RelinearizationKeyGenShare
	parties     int
	got1, got2  int
	tmp1, tmp2  mhe.RelinearizationKeyGenShare
	round1Final bool
}

// NewRKGAggregator expects exactly parties shares in each round.
func NewRKGAggregator(p *Params, crsSeed []byte, parties int) (*RKGAggregator, error) {
	if parties < 2 {
		return nil, fmt.Errorf("he: collective key needs at least 2 parties, got %d", parties)
	}
	if _, err := p.rkgCRP(crsSeed); err != nil {
		return nil, err
	}
	rkg := mhe.NewRelinearizationKeyGenProtocol(p.Parameters)
	_, r1, r2 := rkg.AllocateShare()
	_, t1, t2 := rkg.AllocateShare()
	return &RKGAggregator{params: p, rkg: rkg, r1: r1, r2: r2, tmp1: t1, tmp2: t2, parties: parties}, nil
}

// AddRound1 adds one party's round-1 share.
func (a *RKGAggregator) AddRound1(share []byte) error {
	if a.got1 >= a.parties {
		return fmt.Errorf("he: RKG round 1: already have all %d shares", a.parties)
	}
	if err := a.params.unmarshalGadget(share, KindRKGRound1, &a.tmp1.GadgetCiphertext); err != nil {
		return fmt.Errorf("he: RKG round-1 share: %w", err)
	}
	if a.got1 == 0 {
		a.copyShare(&a.r1, &a.tmp1)
	} else {
		a.rkg.AggregateShares(a.r1, a.tmp1, &a.r1)
	}
	a.got1++
	return nil
}

func (a *RKGAggregator) copyShare(dst, src *mhe.RelinearizationKeyGenShare) {
	d, s := gadgetPolys(&dst.GadgetCiphertext), gadgetPolys(&src.GadgetCiphertext)
	for i := range d {
		d[i].Copy(s[i])
	}
}

// Round1Sum returns the aggregated round-1 share to send to every party.
func (a *RKGAggregator) Round1Sum() ([]byte, error) {
	if a.got1 != a.parties {
		return nil, fmt.Errorf("he: RKG round 1: have %d of %d shares", a.got1, a.parties)
	}
	a.round1Final = true
	return a.params.marshalGadget(KindRKGRound1, &a.r1.GadgetCiphertext), nil
}

// AddRound2 adds one party's round-2 share.
func (a *RKGAggregator) AddRound2(share []byte) error {
	if !a.round1Final {
		return fmt.Errorf("he: RKG round 2 before the round-1 sum was taken")
	}
	if a.got2 >= a.parties {
		return fmt.Errorf("he: RKG round 2: already have all %d shares", a.parties)
	}
	if err := a.params.unmarshalGadget(share, KindRKGRound2, &a.tmp2.GadgetCiphertext); err != nil {
		return fmt.Errorf("he: RKG round-2 share: %w", err)
	}
	if a.got2 == 0 {
		a.copyShare(&a.r2, &a.tmp2)
	} else {
		a.rkg.AggregateShares(a.r2, a.tmp2, &a.r2)
	}
	a.got2++
	return nil
}

// RelinKey returns the collective relinearisation key once all round-2
// shares are in.
func (a *RKGAggregator) RelinKey() (*RelinKey, error) {
	if a.got2 != a.parties {
		return nil, fmt.Errorf("he: RKG round 2: have %d of %d shares", a.got2, a.parties)
	}
	rlk := rlwe.NewRelinearizationKey(a.params.Parameters)
	a.rkg.GenRelinearizationKey(a.r1, a.r2, rlk)
	return &RelinKey{params: a.params, rlk: rlk}, nil
}

// RelinKey is a (collective) relinearisation key.
type RelinKey struct {
	params *Params
	rlk    *rlwe.RelinearizationKey
}

// Raw returns the lattigo key (for evaluators).
func (k *RelinKey) Raw() *rlwe.RelinearizationKey { return k.rlk }

// Params returns the key's parameter set.
func (k *RelinKey) Params() *Params { return k.params }

// MarshalBinary serializes the key with the parameter fingerprint.
func (k *RelinKey) MarshalBinary() ([]byte, error) {
	return k.params.marshalGadget(KindRelinKey, &k.rlk.GadgetCiphertext), nil
}

// UnmarshalRelinKey parses a relinearisation key made under p.
func (p *Params) UnmarshalRelinKey(data []byte) (*RelinKey, error) {
	if p.PCount() == 0 {
		return nil, fmt.Errorf("he: unmarshal relinearisation key: parameter set %s has none", p.name)
	}
	rlk := rlwe.NewRelinearizationKey(p.Parameters)
	if err := p.unmarshalGadget(data, KindRelinKey, &rlk.GadgetCiphertext); err != nil {
		return nil, fmt.Errorf("he: unmarshal relinearisation key: %w", err)
	}
	return &RelinKey{params: p, rlk: rlk}, nil
}
